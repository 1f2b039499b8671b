"""The app's URLs plus /bench/bare: the constant the benchmark measures every endpoint against.

The bench's gunicorn runs with ROOT_URLCONF=bench.urls, under the same settings, middleware and
workers as the app, so the bare view pays exactly the per-request cost that every endpoint pays
before it does any work of its own (WSGI, middleware, URL resolution, JSON response).

The ceiling views (/bench/floor-*) are the least an unmet row of issue 17 could cost under the
contract: the floor plus only the work no implementation of that row can skip. They exist only
here (ROOT_URLCONF=bench.urls), never in config.urls: they skip permissions and validation.
"""

import orjson
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from django.utils import timezone
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from courseprogress.throttling import ProgressUpdateThrottle
from progress import read_cache, selectors, upsert_sql

BARE_BODY = {"success": True, "message": "ok", "results": {"bench": "bare"}}


def bare(request):
    """A constant small JSON body: no authentication, no database, no cache."""
    return JsonResponse(BARE_BODY)


class Floor(APIView):
    """The framework's floor: what every API endpoint pays before doing any work of its own.

    DRF dispatch with the app's settings (cached token authentication, IsAuthenticated, content
    negotiation, the envelope renderer) and a constant body. No endpoint can be faster than this;
    its ratio to the bare view is the ceiling of every ratio in the table."""

    permission_classes = [IsAuthenticated]
    success_message = "ok"

    def get(self, request):
        return Response({"bench": "floor"})


class FloorStamp(Floor):
    """The floor + the 3.1 stamp statement (read_cache.learner_stamp): the least any cached 3.1
    can cost under contract 3.9, which checks every cached read's stamp in PostgreSQL."""

    def get(self, request, course_id: int, user_id: int):
        stamp = read_cache.learner_stamp(course_id=course_id, user_id=user_id)
        return Response({"bench": "floor-stamp", "enrolled": stamp is not None})


class FloorStampBody(Floor):
    """The floor + the cached 3.1 itself (selectors.cached_learner_progress: the stamp, the
    entry from Redis, its ~41 KB body spliced into the envelope): a cached 3.1 without its
    permission check and the view's own work."""

    def get(self, request, course_id: int, user_id: int):
        return Response(selectors.cached_learner_progress(course_id=course_id, user_id=user_id))


class FloorCourseStamp(Floor):
    """The floor + the course stamp statement (read_cache.course_stamp_at): the least any cached
    3.5 (or 3.2) can cost under contract 3.9, before the staff check and the body."""

    def get(self, request, course_id: int):
        stamp = read_cache.course_stamp_at(course_id)
        return Response({"bench": "floor-course-stamp", "exists": stamp is not None})


class FloorThrottleCall(Floor):
    """The floor + the update throttle + one cp_record_progress call (progress/upsert_sql.py)
    for the caller: the POST without the body's validation, the serializer, the after-commit
    invalidation and the response's shaping. Answers the three ids the bench's rows check reads
    (progressId, userId, courseContentId); a refused write answers 409."""

    throttle_classes = [ProgressUpdateThrottle]

    def post(self, request):
        body = orjson.loads(request.body)
        user_id = request.user.pk
        params = [
            user_id,
            body["courseId"],
            body["courseContentId"],
            body["progressStatus"],
            body.get("progressPercent"),
            body.get("activityDuration"),
            None,
            False,
            timezone.now(),
        ]
        with connection.cursor() as cursor:
            cursor.execute(upsert_sql.CALL, params)
            outcome, row_id = cursor.fetchone()[:2]
        if outcome != "ok":
            return Response({"bench": "refused", "outcome": outcome}, status=409)
        results = {"progressId": row_id, "userId": user_id}
        results["courseContentId"] = body["courseContentId"]
        return Response(results)


urlpatterns = [
    path("bench/bare", bare, name="bench-bare"),
    path("bench/drf", Floor.as_view(), name="bench-drf"),
    path("bench/floor-stamp/<int:course_id>/<int:user_id>", FloorStamp.as_view()),
    path("bench/floor-stamp-body/<int:course_id>/<int:user_id>", FloorStampBody.as_view()),
    path("bench/floor-course-stamp/<int:course_id>", FloorCourseStamp.as_view()),
    path("bench/floor-throttle-call", FloorThrottleCall.as_view()),
    path("", include("config.urls")),
]
