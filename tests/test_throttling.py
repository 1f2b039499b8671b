"""Throttles on the token endpoint and on progress updates: 429 in the envelope, Retry-After."""

import pytest

from progress.models import ContentProgress


@pytest.fixture
def tight(settings):
    settings.THROTTLE_RATES = {"auth_token": "3/min", "progress_update": "2/min"}


def test_token_requests_are_limited_per_client(tight, anon, learner):
    body = {"username": "learner", "password": "wrong"}
    codes = [anon.post("/auth/token", body, format="json").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    response = anon.post(
        "/auth/token", {"username": "learner", "password": "pw-learner"}, format="json"
    )
    assert response.status_code == 429
    assert response.json()["success"] is False
    assert int(response["Retry-After"]) > 0


def test_progress_updates_are_limited_per_user(
    tight, client_for, learner, other_learner, course, contents, enrolled
):
    from progress import services

    body = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    client = client_for(learner)
    codes = [
        client.post("/user-progress/update", body, format="json").status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    # Another learner has their own allowance.
    services.enrol(user_id=other_learner.pk, course_id=course.pk)
    other = client_for(other_learner).post("/user-progress/update", body, format="json")
    assert other.status_code == 200
    assert ContentProgress.objects.count() == 2


def test_reads_are_not_limited(tight, client_for, learner, course, enrolled):
    client = client_for(learner)
    assert {
        client.get(f"/user-progress/{course.pk}/{learner.pk}").status_code for _ in range(5)
    } == {200}


def test_limits_can_be_switched_off(settings, client_for, learner, course, contents, enrolled):
    settings.THROTTLE_RATES = {"auth_token": None, "progress_update": None}
    body = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    client = client_for(learner)
    assert {
        client.post("/user-progress/update", body, format="json").status_code for _ in range(5)
    } == {200}


def test_rates_are_read_from_the_environment(monkeypatch):
    import importlib

    import config.settings as module

    monkeypatch.setenv("THROTTLE_RATE_AUTH_TOKEN", "off")
    monkeypatch.setenv("THROTTLE_RATE_PROGRESS_UPDATE", "5/second")
    monkeypatch.setenv("SECRET_KEY", "x")
    reloaded = importlib.reload(module)
    try:
        assert reloaded.THROTTLE_RATES == {"auth_token": None, "progress_update": "5/second"}
    finally:
        monkeypatch.undo()
        importlib.reload(module)
