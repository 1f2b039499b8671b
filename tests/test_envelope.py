"""Every failure under /user-progress/ and /auth/ is JSON in the contract's envelope."""

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from progress.models import ContentProgress


def assert_failure(response, status, message=None):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in response.content.decode()
    if message is not None:
        assert body["message"] == message
    return body


def test_success_envelope(client_for, learner, course, enrolled):
    body = client_for(learner).get(f"/user-progress/{course.pk}/{learner.pk}").json()
    assert body["success"] is True
    assert body["message"] == "User progress retrieved successfully"
    assert set(body) == {"success", "message", "results"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/user-progress/abc/1",
        "/user-progress/1/abc",
        "/user-progress/course/x/all",
        "/user-progress/nothing-here",
        "/user-progress/1/2/3/4",
        "/auth/nowhere",
        "/user-progress/99999999999999999999/1",
    ],
)
def test_unknown_paths_are_json_404(path, anon):
    assert_failure(anon.get(path), 404)


def test_unknown_path_is_json_404_even_for_browsers(anon, db):
    response = anon.get("/user-progress/abc/1", HTTP_ACCEPT="text/html")
    assert_failure(response, 404)


def test_no_credentials_is_401(anon, course, learner):
    body = assert_failure(anon.get(f"/user-progress/{course.pk}/{learner.pk}"), 401)
    assert "errors" not in body


def test_bad_token_is_401(course, learner):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_failure(client.get(f"/user-progress/{course.pk}/{learner.pk}"), 401)


def test_forbidden_is_403_access_denied(client_for, other_learner, course, learner):
    response = client_for(other_learner).get(f"/user-progress/{course.pk}/{learner.pk}")
    assert_failure(response, 403, "Access denied")


def test_wrong_method_is_json_405(client_for, learner, course):
    response = client_for(learner).delete(f"/user-progress/{course.pk}/{learner.pk}")
    assert_failure(response, 405)
    assert_failure(client_for(learner).get("/user-progress/update"), 405)
    assert_failure(client_for(learner).get("/auth/token"), 405)


def test_malformed_json_is_400(client_for, learner):
    response = client_for(learner).post(
        "/user-progress/update", data="{not json", content_type="application/json"
    )
    assert_failure(response, 400)


def test_validation_failure_names_fields(client_for, learner, course, contents, enrolled):
    response = client_for(learner).post(
        "/user-progress/update",
        {"courseId": course.pk, "courseContentId": contents[0].pk, "progressStatus": "DONE"},
        format="json",
    )
    body = assert_failure(response, 400)
    assert list(body["errors"]) == ["progressStatus"]
    assert isinstance(body["errors"]["progressStatus"], list)


def test_body_over_one_mebibyte_is_json_413(client_for, learner, course, contents, enrolled):
    payload = json.dumps(
        {
            "courseId": course.pk,
            "courseContentId": contents[0].pk,
            "progressStatus": "IN_PROGRESS",
            "metadata": {"blob": "x" * (1024 * 1024 + 10)},
        }
    )
    response = client_for(learner).post(
        "/user-progress/update", data=payload, content_type="application/json"
    )
    assert_failure(response, 413)
    assert not ContentProgress.objects.exists()


def test_server_error_is_json_500_without_detail(
    client_for, learner, course, enrolled, monkeypatch
):
    from progress import selectors

    def explode(**kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(selectors, "cached_learner_progress", explode)
    response = client_for(learner).get(f"/user-progress/{course.pk}/{learner.pk}")
    body = assert_failure(response, 500, "Internal server error")
    assert "hunter2" not in response.content.decode()
    assert "errors" not in body


@override_settings(DEBUG=False)
def test_crash_outside_drf_is_json_500(anon, db, monkeypatch):
    # A crashing URL resolver stands in for any error raised before a DRF view runs.
    client = APIClient(raise_request_exception=False)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("django.urls.resolvers.URLResolver.resolve", broken)
    response = client.get("/user-progress/1/2")
    assert_failure(response, 500)


def test_api_responses_are_private_and_not_stored(client_for, learner, course, enrolled):
    response = client_for(learner).get(f"/user-progress/{course.pk}/{learner.pk}")
    assert response["Cache-Control"] == "private, no-store"


def test_database_outage_is_json_503_with_retry_after(client_for, learner, course, monkeypatch):
    from django.db import OperationalError

    from progress import selectors

    def unreachable(**kwargs):
        raise OperationalError("connection failed: Connection refused")

    monkeypatch.setattr(selectors, "cached_learner_progress", unreachable)
    monkeypatch.setattr("courseprogress.exceptions.connection.vendor", "postgresql")
    response = client_for(learner).get(f"/user-progress/{course.pk}/{learner.pk}")
    body = assert_failure(response, 503)
    assert response["Retry-After"] == "5"
    assert "Connection refused" not in body["message"]


def test_a_missing_table_is_a_bug_not_an_outage(client_for, learner, course, monkeypatch):
    from django.db import connection

    from progress import selectors

    def broken(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_here")

    monkeypatch.setattr(selectors, "cached_learner_progress", broken)
    response = client_for(learner).get(f"/user-progress/{course.pk}/{learner.pk}")
    assert_failure(response, 500)
