"""Thin views: permission (progress.policy) -> existence (404) -> serializer (400) -> selector or
service (409) -> response. The envelope is the renderer's."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from courseprogress.apiview import ApiView
from courseprogress.exceptions import Conflict, NotFound
from courseprogress.renderers import Paginated
from courseprogress.schema import envelope, responses
from courseprogress.throttling import ProgressUpdateThrottle
from progress import events, policy, selectors, services
from progress.filters import DATE_OR_DATE_TIME_PATTERN
from progress.formatting import format_enrollment, format_progress
from progress.models import EnrollmentStatus, EventType, ProgressStatus
from progress.serializers import (
    ActivityOut,
    AnalyticsOut,
    BulkIn,
    CourseLearnerOut,
    EnrollIn,
    EnrollmentOut,
    EnrollmentPatchIn,
    EventOut,
    FeedPaginationOut,
    LearnerProgressOut,
    ProgressRowOut,
    ProgressUpdateIn,
    json_int,
)


def ensure_named_ids_exist(request) -> None:
    """404 for the body's courseId, then for its userId when that names someone else: on the
    ids as given (the body is an object: the endpoint's permission class saw to it)."""
    data, actor = request.data, request.user
    user_id = data.get("userId", actor.pk)
    selectors.ensure_course_and_user(
        course_id=json_int(data.get("courseId")),
        user_id=json_int(user_id) if user_id != actor.pk else None,
    )


PAGE_NUMBER = {"type": "integer", "minimum": 1}
# What DateOrDateTimeField accepts: an RFC 3339 date, or date-time with its offset, 1970-9998.
# Each branch has its type, so generated clients take a date or a datetime (not Any) and send
# it in ISO form with its "+" encoded.
DATE_PARAM = {
    "anyOf": [
        {"type": "string", "format": "date", "pattern": DATE_OR_DATE_TIME_PATTERN},
        {"type": "string", "format": "date-time", "pattern": DATE_OR_DATE_TIME_PATTERN},
    ],
}
DATE_HELP = (
    "ISO 8601 date (the whole day in the server's TIME_ZONE) or date-time with its offset, "
    "inclusive, on the row's last update. In a URL write the offset's + as %2B."
)


class LearnerProgressView(ApiView):
    permission_classes = [policy.CanViewLearner]
    success_message = "User progress retrieved successfully"

    @extend_schema(
        operation_id="user_progress_retrieve",
        summary="One learner in a course",
        description=(
            "The learner's enrollment (null when not enrolled) and every progress row, newest "
            "update first. `activityDuration` is minutes, `progressPercent` percent.\n\n"
            "**Who:** that learner, the course's staff, admins."
        ),
        responses=responses(
            {200: envelope("LearnerProgressEnvelope", LearnerProgressOut())}, 401, 403, 404
        ),
    )
    def get(self, request, course_id: int, user_id: int):
        return Response(selectors.cached_learner_progress(course_id=course_id, user_id=user_id))


class ActivitiesView(ApiView):
    permission_classes = [policy.CanViewLearner]
    success_message = "Activity logs retrieved successfully"

    @extend_schema(
        operation_id="user_progress_activities",
        summary="One learner's activity log",
        description=(
            "The learner's progress rows in the course, newest update first, filtered by the "
            "date of their last update and by status; paginated (100 a page, at most 1000). "
            "`activityDuration` is minutes.\n\n**Who:** that learner, the course's staff, "
            "admins."
        ),
        parameters=[
            OpenApiParameter("startDate", DATE_PARAM, description=DATE_HELP),
            OpenApiParameter("endDate", DATE_PARAM, description=DATE_HELP),
            OpenApiParameter("status", str, enum=ProgressStatus.values),
            OpenApiParameter("page", PAGE_NUMBER, description="Page number, from 1"),
            OpenApiParameter(
                "limit", PAGE_NUMBER, description="Items per page (default 100, max 1000)"
            ),
        ],
        responses=responses(
            {200: envelope("ActivitiesEnvelope", ActivityOut(many=True), paginated=True)},
            400,
            401,
            403,
            404,
        ),
    )
    def get(self, request, course_id: int, user_id: int):
        page = selectors.cached_activities_page(
            course_id=course_id, user_id=user_id, params=request.query_params
        )
        return Response(Paginated(page))


class CourseLearnersView(ApiView):
    permission_classes = [policy.CanViewCourse]
    success_message = "All users progress retrieved successfully"

    @extend_schema(
        operation_id="course_progress_list",
        summary="Every learner of a course",
        description=(
            "Each enrollment of the course with the learner's `progress` (percent: the mean "
            "over all content items, a COMPLETED item counting 100) and progress rows; "
            "filtered by enrollment status, sorted, paginated (20 a page, at most 100).\n\n"
            "**Who:** the course's staff, admins."
        ),
        parameters=[
            OpenApiParameter("status", str, enum=EnrollmentStatus.values),
            OpenApiParameter("sortBy", str, enum=["progress", "enrollmentDate", "completionDate"]),
            OpenApiParameter("order", str, enum=["asc", "desc"]),
            OpenApiParameter("page", PAGE_NUMBER, description="Page number, from 1"),
            OpenApiParameter(
                "limit", PAGE_NUMBER, description="Items per page (default 20, max 100)"
            ),
        ],
        responses=responses(
            {200: envelope("CourseLearnersEnvelope", CourseLearnerOut(many=True), paginated=True)},
            400,
            401,
            403,
            404,
        ),
    )
    def get(self, request, course_id: int):
        page = selectors.cached_course_page(
            course_id=course_id, params=request.query_params, stamp=self.course_stamp
        )
        return Response(Paginated(page))


class CourseAnalyticsView(ApiView):
    permission_classes = [policy.CanViewCourse]
    success_message = "Course analytics retrieved successfully"

    @extend_schema(
        operation_id="course_analytics",
        summary="Course analytics",
        description=(
            "Totals over the course's enrollments and progress rows; no individual learner. "
            "`averageProgress` and `completionRate` are percent, `averageCompletionTime` is "
            "days (enrollment to completion, null when nobody completed), "
            "`contentEngagement[].avgDuration` is minutes.\n\n**Who:** the course's staff, "
            "admins."
        ),
        responses=responses({200: envelope("AnalyticsEnvelope", AnalyticsOut())}, 401, 403, 404),
    )
    def get(self, request, course_id: int):
        return Response(selectors.course_analytics_at(course_id=course_id, stamp=self.course_stamp))


class ProgressUpdateView(ApiView):
    permission_classes = [policy.CanRecordProgress]
    throttle_classes = [ProgressUpdateThrottle]
    success_message = "Progress updated successfully"

    @extend_schema(
        operation_id="user_progress_update",
        summary="Record progress on a content item",
        description=(
            "Creates or updates the caller's row for one content item. Learners' updates merge: "
            "the status keeps the further of old and new (NOT_STARTED < IN_PROGRESS < "
            "COMPLETED), `progressPercent` and `activityDuration` (minutes spent so far) keep "
            "the larger value, `metadata` keys overwrite. System users and admins set exactly "
            "what they send, for any `userId`, and alone may set or clear LOCKED. The first "
            "activity moves the enrollment to IN_PROGRESS; every item COMPLETED moves it to "
            "COMPLETED. 409 without an active enrollment, or on LOCKED content.\n\n"
            "**Who:** learners (their own progress), system users and admins (anyone's)."
        ),
        request=ProgressUpdateIn,
        responses=responses(
            {200: envelope("ProgressRowEnvelope", ProgressRowOut())},
            *(400, 401, 403, 404, 409, 429),
            body=True,
        ),
    )
    def post(self, request):
        # 404 before 400 and 409, without a statement of its own when the body is valid: the
        # write finds a missing course or user anyway (content "not in the course", or "no
        # active enrollment"), and only then are the ids looked up, to tell which it was. A
        # valid update is one statement on PostgreSQL (bench/notes.md, issue 17, "Second pass").
        serializer = ProgressUpdateIn(data=request.data)
        if not serializer.is_valid():
            ensure_named_ids_exist(request)
            serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        try:
            row = services.record_progress(
                user_id=fields.get("userId", request.user.pk),
                course_id=fields["courseId"],
                content_id=fields["courseContentId"],
                status=fields["progressStatus"],
                percent=fields.get("progressPercent"),
                duration=fields.get("activityDuration"),
                metadata=fields.get("metadata"),
                exact=policy.can_record_for_anyone(request.user),
            )
        except (DjangoValidationError, Conflict):
            ensure_named_ids_exist(request)
            raise
        return Response(format_progress(vars(row)))


class BulkProgressView(ApiView):
    permission_classes = [policy.CanViewLearners]
    success_message = "Users progress retrieved successfully"

    @extend_schema(
        operation_id="user_progress_bulk",
        summary="Several learners of a course at once",
        description=(
            "For each of 1 to 100 distinct user ids, in the order given: the entry of "
            "`GET /user-progress/course/{courseId}/all` (`progress` in percent); a user with no "
            "enrollment has `enrollments: null` and `progress: 0.0`.\n\n"
            "**Who:** the course's staff, admins; a learner only for `[their own id]`."
        ),
        request=BulkIn,
        responses=responses(
            {200: envelope("BulkProgressEnvelope", CourseLearnerOut(many=True))},
            *(400, 401, 403, 404),
            body=True,
        ),
    )
    def post(self, request):
        course_id = json_int(request.data.get("courseId"))  # an object: CanViewLearners saw to it
        contents, position = (  # 404
            selectors.content_count_at(course_id) if course_id is not None else (None, None)
        )
        serializer = BulkIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(
            selectors.bulk_progress_at(
                **serializer.validated_data, contents=contents, position=position
            )
        )


ENROL_MESSAGES = {
    "created": "Enrolled successfully",
    "reenrolled": "Re-enrolled successfully",
    "existing": "Enrollment retrieved successfully",
}


class EnrollmentsView(ApiView):
    permission_classes = [policy.CanEnrol]

    @extend_schema(
        operation_id="enrollment_create",
        summary="Enrol a learner",
        description=(
            "201 with a new enrollment (ENROLLED). An active enrollment that exists is a 200 "
            'with it ("Enrollment retrieved successfully"); a DROPPED or EXPIRED one is '
            're-enrolled, a 200 ("Re-enrolled successfully") with its new status.\n\n'
            "**Who:** a learner for themself (no `userId`); the course's staff, admins and "
            "system users for anyone."
        ),
        request=EnrollIn,
        responses=responses(
            {
                201: envelope("EnrollmentCreatedEnvelope", EnrollmentOut()),
                200: envelope("EnrollmentEnvelope", EnrollmentOut()),
            },
            *(400, 401, 403, 404),
            body=True,
        ),
    )
    def post(self, request):
        ensure_named_ids_exist(request)
        serializer = EnrollIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        enrollment, outcome = services.enrol_with_outcome(
            **{"user_id": request.user.pk, **serializer.validated_data}
        )
        self.success_message = ENROL_MESSAGES[outcome]
        return Response(
            format_enrollment(vars(enrollment)),
            status=status.HTTP_201_CREATED if outcome == "created" else status.HTTP_200_OK,
        )


class EnrollmentDetailView(ApiView):
    permission_classes = [policy.CanMoveEnrollment]
    success_message = "Enrollment updated successfully"

    @extend_schema(
        operation_id="enrollment_update",
        summary="Move an enrollment",
        description=(
            "Sets `enrollmentStatus`, `certificateUrl` and/or `metadata` (replaced as a whole). "
            "Allowed moves: ENROLLED → IN_PROGRESS → COMPLETED → CERTIFIED; ENROLLED, "
            "IN_PROGRESS or COMPLETED → DROPPED or EXPIRED; DROPPED or EXPIRED → ENROLLED. Any "
            "other move is a 409 and changes nothing. CERTIFIED needs a `certificateUrl` sent "
            "or stored.\n\n**Who:** the course's staff, admins (others get 403, also for an "
            "enrollment that does not exist)."
        ),
        request=EnrollmentPatchIn,
        responses=responses(
            {200: envelope("EnrollmentUpdatedEnvelope", EnrollmentOut())},
            *(400, 401, 403, 404, 409),
            body=True,
        ),
    )
    def patch(self, request, enrollment_id: int):
        if self.enrollment_course_id is None:  # CanMoveEnrollment looked it up; admins only
            raise NotFound("Enrollment not found.")
        serializer = EnrollmentPatchIn(data=policy.body_object(request))
        serializer.is_valid(raise_exception=True)
        enrollment = services.update_enrollment(enrollment_id, **serializer.validated_data)
        return Response(format_enrollment(vars(enrollment)))


class EventsView(ApiView):
    """The change feed (contract section 6): events oldest first, after a cursor."""

    permission_classes = [policy.CanReadFeed]
    success_message = "Events retrieved successfully"

    @extend_schema(
        operation_id="events_list",
        summary="The change feed",
        description=(
            "Every change to enrollments and progress rows, oldest first, recorded by the "
            "database in the writing transaction (so every writer produces events). Follow "
            "`pagination.next` as `after` to see each event exactly once and in `sequence` "
            "order, even when transactions commit out of order. Events are kept "
            "EVENT_RETENTION_DAYS (default 30); an older cursor is a 410: start again without "
            "`after`. `data.activityDuration` is minutes, `data.progressPercent` percent.\n\n"
            "**Who:** learners see their own events (another `userId` is a 403), course staff "
            "their courses' (another course is a 403), admins everything; system users 403."
        ),
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": events.MAX_CURSOR},
                description="Cursor: the `next` of the previous page (absent: from the oldest "
                "event kept)",
            ),
            OpenApiParameter(
                "courseId", {"type": "integer", "minimum": 1, "maximum": events.MAX_ID}
            ),
            OpenApiParameter("userId", {"type": "integer", "minimum": 1, "maximum": events.MAX_ID}),
            OpenApiParameter(
                "type",
                {"type": "array", "items": {"type": "string", "enum": EventType.values}},
                explode=True,
                description="Event types; repeat the parameter or separate them with commas",
            ),
            OpenApiParameter(
                "limit", PAGE_NUMBER, description="Events per page (default 100, max 1000)"
            ),
        ],
        responses=responses(
            {
                200: envelope(
                    "EventsEnvelope",
                    EventOut(many=True),
                    pagination=FeedPaginationOut(),
                )
            },
            400,
            401,
            403,
            410,
        ),
    )
    def get(self, request):
        return Response(
            Paginated(events.feed_page(actor=request.user, params=request.query_params))
        )
