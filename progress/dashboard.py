"""The course progress dashboard of the admin: contract 3.5's analytics as a page read at a glance.

The figures come from the selectors (the same cached, never-stale analytics as the API); this
module only lays them out as SVG geometry, so the template has no arithmetic and the page needs
no JavaScript.
"""

from datetime import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from courseprogress.models import Course, CourseContent
from progress import read_cache, selectors
from progress.formatting import round2
from progress.models import EnrollmentStatus
from progress.policy import can_view_course

STATUS_COLOURS = {
    EnrollmentStatus.ENROLLED: "#8a94a6",
    EnrollmentStatus.IN_PROGRESS: "#2f7fc1",
    EnrollmentStatus.COMPLETED: "#2e9e5b",
    EnrollmentStatus.CERTIFIED: "#16623a",
    EnrollmentStatus.DROPPED: "#c0392b",
    EnrollmentStatus.EXPIRED: "#d68910",
}
LABEL_WIDTH, BAR_WIDTH, CHART_WIDTH = 220, 300, 660
ROW_HEIGHT = 56
LEARNERS_SHOWN = 10


def _number(value: float) -> str:
    return f"{round2(value):.2f}".rstrip("0").rstrip(".")


def _width(value: float, scale: float, full: float = BAR_WIDTH) -> float:
    return round(full * value / scale, 1) if scale else 0.0


def totals(analytics: dict) -> list[dict]:
    days = analytics["averageCompletionTime"]
    return [
        {"key": "totalEnrollments", "label": "Enrollments", "value": analytics["totalEnrollments"]},
        {"key": "activeUsers", "label": "In progress", "value": analytics["activeUsers"]},
        {"key": "completedUsers", "label": "Completed", "value": analytics["completedUsers"]},
        {
            "key": "averageProgress",
            "label": "Average progress",
            "value": f"{_number(analytics['averageProgress'])} %",
        },
        {
            "key": "completionRate",
            "label": "Completion rate",
            "value": f"{_number(analytics['completionRate'])} %",
        },
        {
            "key": "averageCompletionTime",
            "label": "Average time to complete",
            "value": "—" if days is None else f"{_number(days)} days",
        },
        {"key": "totalActivities", "label": "Progress rows", "value": analytics["totalActivities"]},
    ]


def content_chart(analytics: dict, titles: dict[int, str]) -> dict:
    """Two bars per content item: completions (of all enrollments) and mean minutes spent."""
    engagement = analytics["contentEngagement"]
    total = analytics["totalEnrollments"]
    count_scale = max([total, *(item["completionCount"] for item in engagement)])
    minutes_scale = max([0, *(item["avgDuration"] for item in engagement)])
    rows = []
    for index, item in enumerate(engagement):
        count, minutes = item["completionCount"], item["avgDuration"]
        rows.append(
            {
                "content_id": item["contentId"],
                "title": titles.get(item["contentId"], f"Content {item['contentId']}"),
                "y": index * ROW_HEIGHT,
                "completions": count,
                "completions_width": _width(count, count_scale),
                "completions_text": f"{count} of {total} completed",
                "minutes": _number(minutes),
                "minutes_width": _width(minutes, minutes_scale),
            }
        )
    return {
        "rows": rows,
        "width": CHART_WIDTH,
        "height": max(len(rows) * ROW_HEIGHT, 1),
        "label_width": LABEL_WIDTH,
        "bar_width": BAR_WIDTH,
        "value_x": LABEL_WIDTH + BAR_WIDTH + 8,
    }


def status_chart(counts: dict[str, int], course_id: int) -> dict:
    """The spread of enrollment statuses as one stacked bar, with a legend that links to them."""
    total = sum(counts.values())
    changelist = reverse("admin:progress_enrollment_changelist")
    x, segments = 0.0, []
    for status, colour in STATUS_COLOURS.items():
        count = counts.get(status, 0)
        width = _width(count, total, CHART_WIDTH)
        segments.append(
            {
                "status": status,
                "count": count,
                "share": _number(100 * count / total) if total else "0",
                "colour": colour,
                "x": x,
                "width": width,
                "url": f"{changelist}?{urlencode({'course': course_id, 'status__exact': status})}",
            }
        )
        x += width
    return {"segments": segments, "width": CHART_WIDTH, "total": total}


def furthest_behind(course_id: int, contents: int) -> list[dict]:
    learners = selectors.learners_furthest_behind(
        course_id=course_id, contents=contents, limit=LEARNERS_SHOWN
    )
    return [
        {
            "username": learner["user__username"],
            "status": learner["status"],
            "progress": _number(learner["progress"]),
            "bar_width": _width(round2(learner["progress"]), 100, 120),
            "enrolled_at": learner["enrolled_at"],
            "url": reverse("admin:progress_enrollment_change", args=[learner["id"]]),
        }
        for learner in learners
    ]


def course_dashboard(request, course_id: int, *, admin_site):
    # 403 before 404, on the id as given: nothing tells an instructor which courses exist.
    if not can_view_course(request.user, course_id=course_id):
        raise PermissionDenied
    course = Course.objects.filter(pk=course_id).first()
    if course is None:  # as the admin answers a missing object: back to the list, with a word
        messages.warning(
            request, f'Course with ID "{course_id}" does not exist. Perhaps it was deleted?'
        )
        return HttpResponseRedirect(reverse("admin:courseprogress_course_changelist"))
    analytics = read_cache.as_data(selectors.cached_course_analytics(course_id=course_id))
    titles = dict(CourseContent.objects.filter(course_id=course_id).values_list("pk", "title"))
    context = {
        **admin_site.each_context(request),
        "title": f"Progress dashboard: {course.title}",
        "opts": Course._meta,
        "course": course,
        "analytics": analytics,
        # An aware datetime: the template shows it in the site's time zone (TIME_ZONE).
        "computed_at": datetime.fromisoformat(analytics["computedAt"]),
        "totals": totals(analytics),
        "content_chart": content_chart(analytics, titles),
        "status_chart": status_chart(
            selectors.enrollment_status_counts(course_id=course_id), course_id
        ),
        "behind": furthest_behind(course_id, len(analytics["contentEngagement"])),
    }
    return TemplateResponse(request, "admin/progress/dashboard.html", context)
