"""GET /user-progress/course/{courseId}/all (contract 3.2)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from progress import services
from progress.models import ContentProgress, Enrollment
from tests import factories


def url(course, query=""):
    return f"/user-progress/course/{course.pk}/all{query}"


@pytest.fixture
def cohort(make_user, course, contents):
    """Four learners: 0 %, 50 % of one item (16.67 %), all done (100 %), dropped after 1 item."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    users = [make_user(f"l{i}") for i in range(4)]
    for i, user in enumerate(users):
        enrollment = factories.enrol(user, course)
        Enrollment.objects.filter(pk=enrollment.pk).update(enrolled_at=base + timedelta(days=3 - i))
    factories.record(users[1], contents[0], "IN_PROGRESS", percent=Decimal(50))
    factories.complete(users[2], contents)
    factories.record(users[3], contents[0], "COMPLETED")
    services.move_enrollment(Enrollment.objects.get(user=users[3]).pk, "DROPPED")
    return users


def test_default_order_and_body(client_for, instructor, course, cohort):
    body = client_for(instructor).get(url(course)).json()
    assert body["message"] == "All users progress retrieved successfully"
    # Default: enrollmentDate ascending; l3 enrolled first.
    assert [entry["userId"] for entry in body["results"]] == [u.pk for u in reversed(cohort)]
    entry = {e["userId"]: e for e in body["results"]}
    assert entry[cohort[0].pk]["progress"] == 0
    assert entry[cohort[1].pk]["progress"] == 16.67
    assert entry[cohort[2].pk]["progress"] == 100
    assert entry[cohort[3].pk]["progress"] == 33.33
    assert list(entry[cohort[2].pk]) == ["userId", "progress", "enrollments", "activityLogs"]
    assert len(entry[cohort[2].pk]["activityLogs"]) == 3
    assert entry[cohort[0].pk]["activityLogs"] == []
    assert entry[cohort[2].pk]["enrollments"]["enrollmentStatus"] == "COMPLETED"
    assert body["pagination"] == {"page": 1, "limit": 20, "totalItems": 4, "totalPages": 1}


def test_sort_by_progress_desc(client_for, instructor, course, cohort):
    body = client_for(instructor).get(url(course, "?sortBy=progress&order=desc")).json()
    assert [e["userId"] for e in body["results"]] == [
        cohort[2].pk,
        cohort[3].pk,
        cohort[1].pk,
        cohort[0].pk,
    ]


def test_ties_break_on_user_id(client_for, instructor, course, cohort):
    Enrollment.objects.filter(course=course).update(enrolled_at=datetime(2025, 1, 1, tzinfo=UTC))
    body = client_for(instructor).get(url(course, "?order=desc")).json()
    assert [e["userId"] for e in body["results"]] == sorted(u.pk for u in cohort)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_null_completion_dates_sort_last(client_for, instructor, course, cohort, order):
    body = client_for(instructor).get(url(course, f"?sortBy=completionDate&order={order}")).json()
    ids = [e["userId"] for e in body["results"]]
    assert ids[0] == cohort[2].pk  # the only one with a completionDate
    assert ids[1:] == sorted(u.pk for u in (cohort[0], cohort[1], cohort[3]))


def test_status_filter(client_for, instructor, course, cohort):
    body = client_for(instructor).get(url(course, "?status=IN_PROGRESS")).json()
    assert [e["userId"] for e in body["results"]] == [cohort[1].pk]
    body = client_for(instructor).get(url(course, "?status=DROPPED")).json()
    assert [e["userId"] for e in body["results"]] == [cohort[3].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=PAUSED", "status"),
        ("?sortBy=name", "sortBy"),
        ("?order=up", "order"),
        ("?page=0", "page"),
        ("?limit=abc", "limit"),
        # Only ASCII digits are a number (contract section 1), whatever int() takes.
        ("?page=1_0", "page"),
        ("?page=%D9%A1", "page"),  # ARABIC-INDIC DIGIT ONE
        ("?page=%EF%BC%91", "page"),  # FULLWIDTH DIGIT ONE
        ("?page=%201", "page"),
        ("?limit=2%20", "limit"),
        ("?limit=+2", "limit"),
        # An escaped "&" is part of the value, not a second parameter.
        ("?limit=2%26order%3Ddesc", "limit"),
    ],
)
def test_bad_parameters_are_400(client_for, instructor, course, cohort, query, field):
    response = client_for(instructor).get(url(course, query))
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_pagination(client_for, instructor, course, cohort):
    client = client_for(instructor)
    body = client.get(url(course, "?limit=3&page=2")).json()
    assert [e["userId"] for e in body["results"]] == [cohort[0].pk]
    assert body["pagination"] == {"page": 2, "limit": 3, "totalItems": 4, "totalPages": 2}
    assert client.get(url(course, "?limit=500")).json()["pagination"]["limit"] == 100
    past = client.get(url(course, "?page=7")).json()
    assert past["results"] == [] and past["pagination"]["totalItems"] == 4


def test_course_without_content_has_zero_progress(client_for, make_user, admin_user, db):
    from courseprogress.models import Course

    empty = Course.objects.create(title="Empty")
    services.enrol(user_id=make_user("solo").pk, course_id=empty.pk)
    body = client_for(admin_user).get(url(empty)).json()
    assert body["results"][0]["progress"] == 0


def test_same_queries_for_limit_1_and_100(
    client_for, instructor, course, contents, make_user, django_assert_num_queries
):
    from tests.conftest import clear_test_cache

    for i in range(12):
        user = make_user(f"many{i}")
        factories.enrol(user, course)
        factories.record(user, contents[i % 3], "COMPLETED")
    client = client_for(instructor)
    client.get(url(course, "?limit=1"))
    clear_test_cache()
    # token, the staff check with the course stamp (one statement), then on PostgreSQL one
    # statement (the count, the page with each learner's progress and activity logs as JSON);
    # elsewhere COUNT, page, logs
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 5) as one:
        client.get(url(course, "?limit=1"))
    clear_test_cache()
    with django_assert_num_queries(len(one.captured_queries)):
        client.get(url(course, "?limit=100"))


def test_rows_of_other_courses_do_not_count(
    client_for, instructor, course, other_course, learner, enrolled
):
    factories.enrol(learner, other_course)
    factories.record(learner, other_course.contents.first(), "COMPLETED")
    body = client_for(instructor).get(url(course)).json()
    assert body["results"][0]["progress"] == 0
    assert body["results"][0]["activityLogs"] == []
    assert ContentProgress.objects.count() == 1


def test_each_course_status_and_page_gets_its_own_learners(
    client_for, admin_user, course, contents, other_course, make_user
):
    """The same query on two courses, page by page (on PostgreSQL the statement of a query's
    shape is compiled once and reused with the course, LIMIT and OFFSET of each request)."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    learners = {course.pk: [], other_course.pk: []}
    for i in range(5):
        for target in (course, other_course):
            user = make_user(f"c{target.pk}-{i}")
            enrollment = factories.enrol(user, target)
            Enrollment.objects.filter(pk=enrollment.pk).update(enrolled_at=base + timedelta(i))
            learners[target.pk].append(user.pk)
    for user_id in learners[course.pk][:2]:  # two IN_PROGRESS, 0.33 % and 16.67 %
        factories.record(
            Enrollment.objects.get(user_id=user_id, course=course).user,
            contents[0],
            "IN_PROGRESS",
            percent=Decimal(1) if user_id == learners[course.pk][0] else Decimal(50),
        )
    client = client_for(admin_user)
    for target in (course, other_course, course):
        for query, expected in (
            ("sortBy=enrollmentDate&order=desc", learners[target.pk][::-1]),
            ("sortBy=completionDate", learners[target.pk]),
            ("sortBy=progress&order=asc", learners[target.pk]),
        ):
            if target == course and query.startswith("sortBy=progress"):
                expected = [*learners[course.pk][2:], *learners[course.pk][:2]]
            seen = []
            for page in (1, 2, 3, 4):
                body = client.get(url(target, f"?{query}&limit=2&page={page}")).json()
                assert body["pagination"]["totalItems"] == 5
                seen += [entry["userId"] for entry in body["results"]]
                assert all(
                    entry["enrollments"]["courseId"] == target.pk for entry in body["results"]
                )
            assert seen == expected, (target.pk, query)
        body = client.get(url(target, "?status=IN_PROGRESS&sortBy=progress&order=desc")).json()
        in_progress = learners[course.pk][1::-1] if target == course else []
        assert [entry["userId"] for entry in body["results"]] == in_progress
        assert body["pagination"]["totalItems"] == len(in_progress)


@pytest.mark.parametrize("sort", ["progress", "enrollmentDate"])
def test_a_page_beyond_any_offset_is_empty(client_for, instructor, course, enrolled, sort):
    """page=10**20 asks for an offset no database integer holds: still a page past the end."""
    response = client_for(instructor).get(url(course, f"?page={10**20}&sortBy={sort}"))
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == []
    assert body["pagination"] == {"page": 10**20, "limit": 20, "totalItems": 1, "totalPages": 1}
