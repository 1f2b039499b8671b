"""Changes proposed for files the bench does not own, in a form the bench can measure.

Each function here is a drop-in replacement for the function of the same name elsewhere; the
bench swaps it in only when asked (`--variant`, see bench/variants.py). Once a proposal is
adopted in its own module, the copy here can go.
"""

from decimal import Decimal

from django.db.models import (
    Avg,
    Case,
    Count,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.http import Http404
from django.utils import timezone

from courseprogress.models import Course, CourseContent
from progress.models import ContentProgress, Enrollment, EnrollmentStatus, ProgressStatus
from progress.serializers import iso, round2


def course_analytics(*, course_id: int) -> dict:
    """progress.selectors.course_analytics with the course's rows read once.

    The current version aggregates the course's rows twice: once with a correlated EXISTS per
    row (which enrollment owns it: 50,000 index probes for a 500 x 100 course) and once per
    content item through a nested loop over idx_progress_content. Here one GROUP BY over the
    course's rows gives every figure; `IN (SELECT userid FROM enrollments WHERE courseid = ...)`
    inside the FILTER becomes a hashed subplan, built once. Same results, same three queries.
    """
    completed = [EnrollmentStatus.COMPLETED, EnrollmentStatus.CERTIFIED]
    stats = Course.objects.filter(pk=course_id).aggregate(
        course=Count("id", distinct=True),
        total=Count("enrollments"),
        active=Count("enrollments", filter=Q(enrollments__status=EnrollmentStatus.IN_PROGRESS)),
        completed=Count("enrollments", filter=Q(enrollments__status__in=completed)),
        completion_time=Avg(
            ExpressionWrapper(
                F("enrollments__completed_at") - F("enrollments__enrolled_at"),
                output_field=DurationField(),
            ),
            filter=Q(enrollments__completed_at__isnull=False),
        ),
    )
    if not stats["course"]:
        raise Http404("Course not found.")

    score = Case(
        When(status=ProgressStatus.COMPLETED, then=Value(Decimal(100))),
        default=F("percent"),
        output_field=DecimalField(max_digits=7, decimal_places=2),
    )
    enrolled = Enrollment.objects.filter(course_id=course_id).values("user_id")
    per_content = {
        content_id: (rows, completions, avg_duration, content_score)
        for content_id, rows, completions, avg_duration, content_score in (
            ContentProgress.objects.filter(course_id=course_id)
            .order_by()
            .values("content_id")
            .annotate(
                rows=Count("id"),
                completions=Count("id", filter=Q(status=ProgressStatus.COMPLETED)),
                avg_duration=Avg(Cast("duration", FloatField())),
                score=Sum(score, filter=Q(user_id__in=enrolled)),
            )
            .values_list("content_id", "rows", "completions", "avg_duration", "score")
        )
    }
    content_ids = list(
        CourseContent.objects.filter(course_id=course_id)
        .order_by("position", "id")
        .values_list("id", flat=True)
    )
    content_engagement = []
    for pk in content_ids:
        _, completions, avg_duration, _ = per_content.get(pk, (0, 0, 0.0, None))
        content_engagement.append(
            {
                "contentId": pk,
                "completionCount": completions,
                "avgDuration": round2(avg_duration or 0.0),
            }
        )
    total_rows = sum(entry[0] for entry in per_content.values())
    total_score = sum((entry[3] or 0) for entry in per_content.values())

    total = stats["total"]
    contents = len(content_ids)
    average_progress = float(total_score) / (contents * total) if contents and total else 0
    completion_time = stats["completion_time"]
    return {
        "totalEnrollments": total,
        "activeUsers": stats["active"],
        "completedUsers": stats["completed"],
        "averageProgress": round2(average_progress),
        "completionRate": round2(100 * stats["completed"] / total) if total else 0,
        "averageCompletionTime": (
            round2(completion_time.total_seconds() / 86400) if completion_time is not None else None
        ),
        "totalActivities": total_rows,
        "contentEngagement": content_engagement,
        "computedAt": iso(timezone.now()),
    }


# --- cached reads kept as rendered JSON ------------------------------------------------------
#
# progress.selectors caches the data (dicts of rows) and every hit unpickles it and renders it
# again. Kept as the bytes the renderer makes (courseprogress.renderers.dumps), a hit is one
# Redis read and a copy: the renderer splices the fragment into the envelope.


def _as_fragment(key: str, stamp, compute, ttl: int):
    from courseprogress.renderers import dumps, json_fragment
    from progress import cache

    entry = cache.cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return json_fragment(entry["json"])
    data = compute()
    body = dumps(data)
    if body is None:  # no orjson: keep the data, uncached
        return data
    cache.cache.set(key, {"stamp": stamp, "json": body}, ttl)
    return json_fragment(body)


def get_learner_progress(*, course_id: int, user_id: int):
    from progress import cache, selectors

    version = cache.learner_version(course_id=course_id, user_id=user_id)
    if version is None:
        return selectors.learner_progress(course_id=course_id, user_id=user_id)
    return _as_fragment(
        cache.learner_key(course_id, user_id) + ":json",
        version,
        lambda: selectors.learner_progress(course_id=course_id, user_id=user_id),
        cache.ttl("LEARNER_PROGRESS"),
    )


def get_course_page(*, course_id: int, params) -> dict:
    from progress import cache, selectors

    params = selectors._relevant(params, selectors.COURSE_PAGE_PARAMS)
    stamp = cache.course_stamp(course_id)
    if stamp is None:
        raise Http404("Course not found.")
    key = cache.course_page_key(course_id, params)
    entry = cache.cache.get(key + ":json")
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        from courseprogress.renderers import json_fragment

        return {"results": json_fragment(entry["json"]), "pagination": entry["pagination"]}
    page = selectors.course_page(course_id=course_id, params=params)
    from courseprogress.renderers import dumps, json_fragment

    body = dumps(page["results"])
    if body is None:
        return page
    cache.cache.set(
        key + ":json",
        {"stamp": stamp, "json": body, "pagination": page["pagination"]},
        cache.ttl("COURSE_PAGE"),
    )
    return {"results": json_fragment(body), "pagination": page["pagination"]}
