"""GET /user-progress/{courseId}/{userId}/activities (contract 3.4)."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from courseprogress.models import CourseContent
from progress.models import ContentProgress


def url(course, user_id, query=""):
    return f"/user-progress/{course.pk}/{user_id}/activities{query}"


def put_row(user, course, content, status, updated):
    row = ContentProgress.objects.create(user=user, course=course, content=content, status=status)
    ContentProgress.objects.filter(pk=row.pk).update(updated_at=updated, created_at=updated)
    return row


@pytest.fixture
def rows(learner, course, contents, enrolled):
    return [
        put_row(
            learner, course, contents[0], "COMPLETED", datetime(2025, 10, 13, 10, 0, tzinfo=UTC)
        ),
        put_row(
            learner, course, contents[1], "IN_PROGRESS", datetime(2025, 10, 14, 23, 0, tzinfo=UTC)
        ),
        put_row(
            learner, course, contents[2], "COMPLETED", datetime(2025, 10, 15, 8, 30, tzinfo=UTC)
        ),
    ]


def test_items_newest_first_with_pagination(client_for, course, learner, rows):
    body = client_for(learner).get(url(course, learner.pk)).json()
    assert body["message"] == "Activity logs retrieved successfully"
    assert [item["progressId"] for item in body["results"]] == [rows[2].pk, rows[1].pk, rows[0].pk]
    assert list(body["results"][0]) == [
        "progressId",
        "courseContentId",
        "progressStatus",
        "activityDuration",
        "progressPercent",
        "v_created_date",
        "v_created_time",
        "v_updated_date",
        "v_updated_time",
    ]
    assert body["pagination"] == {"page": 1, "limit": 100, "totalItems": 3, "totalPages": 1}


def test_status_filter(client_for, course, learner, rows):
    body = client_for(learner).get(url(course, learner.pk, "?status=COMPLETED")).json()
    assert [item["progressId"] for item in body["results"]] == [rows[2].pk, rows[0].pk]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?startDate=2025-10-14", [2, 1]),
        ("?endDate=2025-10-14", [1, 0]),
        ("?startDate=2025-10-14&endDate=2025-10-14", [1]),
        ("?startDate=2025-10-14T23:00:00Z&endDate=2025-10-15T08:30:00Z", [2, 1]),
        ("?startDate=2025-10-15T08:30:01%2B00:00", []),
    ],
)
def test_date_filters_are_inclusive(client_for, course, learner, rows, query, expected):
    body = client_for(learner).get(url(course, learner.pk, query)).json()
    assert [item["progressId"] for item in body["results"]] == [rows[i].pk for i in expected]


def test_offsets_beyond_postgresql_range_are_understood(client_for, course, learner, rows):
    # 2025-10-15T08:30Z is 2025-10-16T04:23+19:53.
    query = "?startDate=2025-10-16T04:23:00%2B19:53"
    body = client_for(learner).get(url(course, learner.pk, query)).json()
    assert [item["progressId"] for item in body["results"]] == [rows[2].pk]


def test_a_date_alone_is_the_whole_day_in_time_zone(settings, client_for, course, learner, rows):
    settings.TIME_ZONE = "Asia/Kolkata"
    # 2025-10-14T23:00Z is 15 Oct 04:30 in Kolkata; 2025-10-15T08:30Z is 15 Oct 14:00.
    body = (
        client_for(learner)
        .get(url(course, learner.pk, "?startDate=2025-10-15&endDate=2025-10-15"))
        .json()
    )
    assert [item["progressId"] for item in body["results"]] == [rows[2].pk, rows[1].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=DONE", "status"),
        ("?startDate=yesterday", "startDate"),
        ("?endDate=2025-13-01", "endDate"),
        ("?startDate=2025-10-15&endDate=2025-10-14", "startDate"),
        ("?page=0", "page"),
        ("?page=x", "page"),
        ("?page=1_0", "page"),
        ("?page=%D9%A1", "page"),  # ARABIC-INDIC DIGIT ONE
        ("?limit=%EF%BC%95", "limit"),  # FULLWIDTH DIGIT FIVE
        ("?page=%201", "page"),
        ("?limit=2%26status%3DCOMPLETED", "limit"),
        ("?limit=-5", "limit"),
        ("?limit=1.5", "limit"),
        ("?endDate=9999-12-31", "endDate"),
        ("?startDate=0001-01-01T00:00:00%2B14:00", "startDate"),
        ("?startDate=1969-12-31", "startDate"),
        ("?endDate=2025-10-14T25:00:00Z", "endDate"),
        ("?endDate=2025-02-30", "endDate"),
        ("?endDate=2025-10-14T10:00:00", "endDate"),
        ("?startDate=", "startDate"),
        ("?status=COMPLETED&status=LOCKED", "status"),
    ],
)
def test_bad_parameters_are_400(client_for, course, learner, rows, query, field):
    response = client_for(learner).get(url(course, learner.pk, query))
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_limit_is_capped_and_reported(client_for, course, learner, rows):
    body = client_for(learner).get(url(course, learner.pk, "?limit=5000")).json()
    assert body["pagination"]["limit"] == 1000


def test_pages(client_for, course, learner, rows):
    client = client_for(learner)
    body = client.get(url(course, learner.pk, "?limit=2&page=2")).json()
    assert [item["progressId"] for item in body["results"]] == [rows[0].pk]
    assert body["pagination"] == {"page": 2, "limit": 2, "totalItems": 3, "totalPages": 2}
    past = client.get(url(course, learner.pk, "?limit=2&page=9"))
    assert past.status_code == 200
    assert past.json()["results"] == []
    assert past.json()["pagination"]["totalItems"] == 3


def test_missing_course_or_user_is_404_for_staff(
    client_for, instructor, admin_user, course, learner
):
    assert client_for(instructor).get(url(course, 987654)).status_code == 404
    assert (
        client_for(admin_user).get(f"/user-progress/987654/{learner.pk}/activities").status_code
        == 404
    )


def test_query_count_does_not_grow_with_rows(
    client_for, course, learner, rows, django_assert_num_queries
):
    from tests.conftest import clear_test_cache

    client = client_for(learner)
    # token, cache version, then the count and the page: one statement on PostgreSQL (the
    # database writes the page's JSON), two elsewhere
    statements = 3 if connection.vendor == "postgresql" else 4
    with django_assert_num_queries(statements):
        client.get(url(course, learner.pk))
    for i in range(20):
        content = CourseContent.objects.create(course=course, title=f"x{i}", position=10 + i)
        ContentProgress.objects.create(user=learner, course=course, content=content)
    clear_test_cache()
    with django_assert_num_queries(statements):
        client.get(url(course, learner.pk))


def test_a_page_beyond_any_offset_is_empty(client_for, course, learner, rows):
    """page=10**20 asks for an offset no database integer holds: still a page past the end."""
    response = client_for(learner).get(url(course, learner.pk, f"?page={10**20}"))
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == []
    assert body["pagination"] == {"page": 10**20, "limit": 100, "totalItems": 3, "totalPages": 1}
