"""GET /user-progress/course/{courseId}/analytics (contract 3.5)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from courseprogress.models import Course
from progress import services
from progress.models import Enrollment
from tests import factories


def url(course_id):
    return f"/user-progress/course/{course_id}/analytics"


@pytest.fixture
def cohort(make_user, course, contents):
    """5 enrollments: ENROLLED, IN_PROGRESS, COMPLETED (2 days), CERTIFIED (4 days), DROPPED."""
    users = [make_user(f"a{i}") for i in range(5)]
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for user in users:
        enrollment = factories.enrol(user, course)
        Enrollment.objects.filter(pk=enrollment.pk).update(enrolled_at=start)
    # a1: 50 % on item 0 with 10 minutes
    factories.record(users[1], contents[0], "IN_PROGRESS", percent=Decimal(50), duration=10)
    # a2, a3: everything completed, 20 minutes each item
    for user in users[2:4]:
        factories.complete(user, contents, durations=[20] * len(contents))
    Enrollment.objects.filter(user=users[2]).update(completed_at=start + timedelta(days=2))
    Enrollment.objects.filter(user=users[3]).update(
        completed_at=start + timedelta(days=4, hours=12)
    )
    services.move_enrollment(
        Enrollment.objects.get(user=users[3]).pk,
        "CERTIFIED",
        certificate_url="https://example.com/c",
    )
    # a4: item 0 completed with 30 minutes, then dropped
    factories.record(users[4], contents[0], "COMPLETED", duration=30)
    services.move_enrollment(Enrollment.objects.get(user=users[4]).pk, "DROPPED")
    return users


def test_figures(client_for, instructor, course, contents, cohort):
    body = client_for(instructor).get(url(course.pk)).json()
    assert body["message"] == "Course analytics retrieved successfully"
    results = body["results"]
    computed_at = results.pop("computedAt")
    assert computed_at.endswith("Z") and len(computed_at) == 24
    # progress: a0 0, a1 16.67, a2 100, a3 100, a4 33.33 -> mean 50
    assert results == {
        "totalEnrollments": 5,
        "activeUsers": 1,
        "completedUsers": 2,
        "averageProgress": 50.0,
        "completionRate": 40.0,
        "averageCompletionTime": 3.25,
        "totalActivities": 1 + 3 + 3 + 1,
        "contentEngagement": [
            {"contentId": contents[0].pk, "completionCount": 3, "avgDuration": 20.0},
            {"contentId": contents[1].pk, "completionCount": 2, "avgDuration": 20.0},
            {"contentId": contents[2].pk, "completionCount": 2, "avgDuration": 20.0},
        ],
    }


def test_no_individual_learner_appears(client_for, instructor, course, cohort):
    text = client_for(instructor).get(url(course.pk)).content.decode()
    for user in cohort:
        assert f'"userId": {user.pk}' not in text
        assert user.username not in text


def test_empty_course(client_for, admin_user, db):
    empty = Course.objects.create(title="Empty")
    results = client_for(admin_user).get(url(empty.pk)).json()["results"]
    results.pop("computedAt")
    assert results == {
        "totalEnrollments": 0,
        "activeUsers": 0,
        "completedUsers": 0,
        "averageProgress": 0,
        "completionRate": 0,
        "averageCompletionTime": None,
        "totalActivities": 0,
        "contentEngagement": [],
    }


def test_content_engagement_in_course_order(client_for, admin_user, course, contents):
    contents[0].position = 99
    contents[0].save()
    results = client_for(admin_user).get(url(course.pk)).json()["results"]
    assert [e["contentId"] for e in results["contentEngagement"]] == [
        contents[1].pk,
        contents[2].pk,
        contents[0].pk,
    ]
    assert all(
        e == {**e, "completionCount": 0, "avgDuration": 0} for e in results["contentEngagement"]
    )


def test_at_most_three_queries_besides_auth(
    client_for, instructor, course, cohort, django_assert_num_queries
):
    from tests.conftest import clear_test_cache

    client = client_for(instructor)
    client.get(url(course.pk))
    clear_test_cache()
    # token, the staff check with the course stamp (one statement), the three analytics queries
    with django_assert_num_queries(5):
        client.get(url(course.pk))
