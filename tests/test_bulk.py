"""POST /user-progress/bulk (contract 3.6)."""

import pytest
from django.db import connection

from tests import factories
from tests.helpers import snapshot


def post(client, **body):
    return client.post("/user-progress/bulk", body, format="json")


@pytest.fixture
def progressed(learner, other_learner, course, contents, enrolled):
    factories.record(learner, contents[0], "COMPLETED")
    return learner


def test_results_in_the_order_asked(
    client_for, instructor, course, learner, other_learner, progressed
):
    body = post(
        client_for(instructor), courseId=course.pk, userIds=[other_learner.pk, learner.pk]
    ).json()
    assert body["success"] is True
    first, second = body["results"]
    assert first == {
        "userId": other_learner.pk,
        "progress": 0,
        "enrollments": None,
        "activityLogs": [],
    }
    assert second["userId"] == learner.pk
    assert second["progress"] == 33.33
    assert second["enrollments"]["enrollmentStatus"] == "IN_PROGRESS"
    assert len(second["activityLogs"]) == 1


def test_same_entry_as_the_course_page(client_for, instructor, course, progressed):
    client = client_for(instructor)
    page = client.get(f"/user-progress/course/{course.pk}/all").json()["results"][0]
    bulk = post(client, courseId=course.pk, userIds=[progressed.pk]).json()["results"][0]
    assert bulk == page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userIds": []}, "userIds"),
        ({"userIds": [1, 1]}, "userIds"),
        ({"userIds": list(range(1, 102))}, "userIds"),
        ({"userIds": ["1"]}, "userIds"),
        ({"userIds": "1,2"}, "userIds"),
        ({"userIds": [0]}, "userIds"),
        ({}, "userIds"),
    ],
)
def test_bad_bodies_are_400(client_for, instructor, course, body, field):
    before = snapshot()
    response = post(client_for(instructor), courseId=course.pk, **body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert snapshot() == before


def test_admin_with_bad_course_id_is_400(client_for, admin_user):
    response = post(client_for(admin_user), courseId="one", userIds=[1])
    assert response.status_code == 400
    assert "courseId" in response.json()["errors"]


def test_same_queries_for_1_and_100_users(
    client_for, instructor, course, contents, make_user, django_assert_num_queries
):
    users = [make_user(f"b{i}") for i in range(100)]
    for user in users[:10]:
        factories.enrol(user, course)
        factories.record(user, contents[0], "IN_PROGRESS")
    client = client_for(instructor)
    post(client, courseId=course.pk, userIds=[users[0].pk])
    # staff check, content count, then the enrollments with their logs: one statement on
    # PostgreSQL, two elsewhere (the token lookup is cached by now)
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 4) as one:
        post(client, courseId=course.pk, userIds=[users[0].pk])
    with django_assert_num_queries(len(one.captured_queries)):
        response = post(client, courseId=course.pk, userIds=[u.pk for u in users])
    assert len(response.json()["results"]) == 100
