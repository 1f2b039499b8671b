"""The bench's ceiling views (bench/urls.py): each does the one piece of work its row claims, so
that the bench's "ceiling of ..." rows measure what their labels say (bench/README.md)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from progress.models import ContentProgress
from tests import factories
from tests.conftest import requires_postgres

pytestmark = pytest.mark.urls("bench.urls")


def test_floor_stamp_reads_the_stamp_and_nothing_else(client_for, course, learner, enrolled):
    client = client_for(learner)
    path = f"/bench/floor-stamp/{course.pk}/{learner.pk}"
    client.get(path)  # the token's entry is cached by the first request
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    assert response.json()["results"] == {"bench": "floor-stamp", "enrolled": True}
    assert len(queries) == 1 and "cache_version" in queries[0]["sql"]


def test_floor_stamp_body_answers_the_cached_3_1_body(
    client_for, course, contents, learner, enrolled
):
    factories.record(learner, contents[0], "COMPLETED")
    client = client_for(learner)
    real = client.get(f"/user-progress/{course.pk}/{learner.pk}")  # fills the entry
    with CaptureQueriesContext(connection) as queries:
        ceiling = client.get(f"/bench/floor-stamp-body/{course.pk}/{learner.pk}")
    assert ceiling.status_code == 200
    assert ceiling.json()["results"] == real.json()["results"]
    assert len(queries) == 1  # the stamp: the body came from the cache


def test_floor_course_stamp_reads_the_course_stamp_and_nothing_else(client_for, course, owner):
    client = client_for(owner)
    path = f"/bench/floor-course-stamp/{course.pk}"
    client.get(path)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    assert response.json()["results"] == {"bench": "floor-course-stamp", "exists": True}
    assert len(queries) == 1 and "SUM(" in queries[0]["sql"]


@requires_postgres
def test_floor_throttle_call_writes_through_cp_record_progress(
    client_for, course, contents, learner, enrolled, other_learner
):
    body = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
        "progressPercent": 40,
        "activityDuration": 5,
    }
    response = client_for(learner).post("/bench/floor-throttle-call", body, format="json")
    assert response.status_code == 200
    row = ContentProgress.objects.get(user=learner, content=contents[0])
    assert (row.status, row.percent, row.duration) == ("IN_PROGRESS", 40, 5)
    assert response.json()["results"] == {
        "progressId": row.pk,
        "userId": learner.pk,
        "courseContentId": contents[0].pk,
    }
    # no enrollment: the function refuses, nothing is written
    refused = client_for(other_learner).post("/bench/floor-throttle-call", body, format="json")
    assert refused.status_code == 409
    assert not ContentProgress.objects.filter(user=other_learner).exists()
