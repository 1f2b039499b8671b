"""Admin changelists make no query per row; the big table is not counted."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courseprogress.models import Course, CourseContent, CourseStaff
from progress.admin import EstimatedCountPaginator
from tests import factories
from tests.admin.tools import (
    CONTENTS,
    COURSES,
    ENROLLMENTS,
    PROGRESS,
    listed,
)
from tests.conftest import requires_postgres

# --- query counts: no query per row -----------------------------------------------------------


def add_learners(world, make_user, start: int, count: int) -> None:
    """More learners in both courses, each with a progress row."""
    for n in range(start, start + count):
        for course in (world.course, world.other_course):
            user = make_user(f"learner{n}-{course.pk}")
            factories.enrol(user, course)
            factories.record(user, course.contents.first(), "IN_PROGRESS")


def add_courses(world, count: int, start: int) -> None:
    for n in range(start, start + count):
        course = Course.objects.create(title=f"Course {n}")
        CourseContent.objects.create(course=course, title="Intro", position=1)
        CourseStaff.objects.create(course=course, user=world.instructor)


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


# Queries per page view, whatever the number of rows (measured; each named):
#   everyone: session, user, the page of rows (users/courses joined or annotated in);
#   instructors: + their CourseStaff course ids (their permissions come from the permission
#     cache once a first page view filled it: courseprogress/auth_backends.py);
#   enrollment, progress and content lists: + the course filter's choices, + one COUNT;
#   unfiltered enrollment and progress lists on PostgreSQL: + the planner's row estimate
#     (pg_class), which replaces the COUNT on big tables (counted exactly below 10,000 rows);
#   enrollment and course lists: + the date hierarchy (min/max date, then the dates to link);
#   course and content lists: + a second COUNT for "(N total)" (small tables, stock admin).
BUDGETS = {
    (ENROLLMENTS, "instructor"): 8,
    (ENROLLMENTS, "superuser"): 8,
    (PROGRESS, "instructor"): 6,
    (PROGRESS, "superuser"): 6,
    (COURSES, "instructor"): 8,
    (COURSES, "superuser"): 7,
    (CONTENTS, "instructor"): 7,
    (CONTENTS, "superuser"): 6,
}


@pytest.mark.parametrize(("url", "who"), list(BUDGETS))
def test_changelists_make_no_query_per_row(
    client, world, make_user, superuser, url, who, django_assert_max_num_queries
):
    client.force_login(world.instructor if who == "instructor" else superuser)
    add_learners(world, make_user, 0, 5)
    add_courses(world, 5, 0)
    queries_for(client, url)  # fills the permission cache
    with django_assert_max_num_queries(BUDGETS[url, who]):
        few = queries_for(client, url)
    add_learners(world, make_user, 5, 25)
    add_courses(world, 25, 5)
    with django_assert_max_num_queries(BUDGETS[url, who]):
        many = queries_for(client, url)
    assert len(listed(client.get(url))) > 30
    assert many == few


@requires_postgres
def test_unfiltered_progress_list_reads_the_planner_estimate_instead_of_counting(
    as_superuser, world, monkeypatch
):
    """At a million rows a COUNT(*) per page view is the slow part; the unfiltered list takes
    pg_class.reltuples (the threshold is lowered so that a few rows show it)."""
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE user_course_content_progress")
    with CaptureQueriesContext(connection) as captured:
        response = as_superuser.get(PROGRESS)
    assert response.status_code == 200
    sql = [query["sql"] for query in captured.captured_queries]
    assert not [q for q in sql if "COUNT(" in q.upper()]
    assert any("reltuples" in q for q in sql)
    assert response.context["cl"].result_count == 5

    # A filtered list counts exactly (it is what the user asked about).
    filtered = as_superuser.get(PROGRESS, {"status__exact": "COMPLETED"})
    assert filtered.context["cl"].result_count == 3


def test_course_autocomplete_counts_nothing(as_superuser, world):
    """The course picker of the enrollment form asks a keystroke at a time: it lists courses
    without the course list's per-row counts of enrollments and content items."""
    with CaptureQueriesContext(connection) as captured:
        response = as_superuser.get(
            "/admin/autocomplete/",
            {"app_label": "progress", "model_name": "enrollment", "field_name": "course"},
        )
    assert response.status_code == 200
    assert {item["id"] for item in response.json()["results"]} == {
        str(world.course.pk),
        str(world.other_course.pk),
    }
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "enrollments" not in sql
    assert "courseprogress_coursecontent" not in sql
