"""Throttles on the token endpoint and on progress updates: 429 in the envelope, Retry-After."""

import ipaddress
from types import SimpleNamespace

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


# --- the client address: X-Forwarded-For only from trusted proxies ---------------------------

WRONG = {"username": "learner", "password": "wrong"}


def token_request(anon, remote="127.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return anon.post("/auth/token", WRONG, format="json", **extra).status_code


def test_a_new_forwarded_address_per_request_does_not_escape_the_limit(tight, anon, learner):
    codes = [token_request(anon, forwarded=f"203.0.113.{n}") for n in range(1, 7)]
    assert codes == [401, 401, 401, 429, 429, 429]


def test_a_forged_forwarded_address_cannot_lock_out_its_owner(tight, anon, learner):
    codes = [token_request(anon, remote="198.51.100.7", forwarded="127.0.0.1") for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert token_request(anon, remote="127.0.0.1") == 401  # the real 127.0.0.1 is not counted


def test_behind_a_trusted_proxy_each_client_has_its_own_count(tight, settings, anon, learner):
    settings.TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.1"),)
    proxy = "10.0.0.1"
    alice = [token_request(anon, proxy, "203.0.113.1") for _ in range(4)]
    # bob forges alice's address in front of his own: the proxy appended his real one.
    bob = [token_request(anon, proxy, "203.0.113.1, 203.0.113.2") for _ in range(3)]
    assert (alice, bob) == ([401, 401, 401, 429], [401, 401, 401])


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "client"),
    [
        ((), "192.0.2.9", None, "192.0.2.9"),
        ((), "192.0.2.9", "203.0.113.1", "192.0.2.9"),  # no proxy trusted: header ignored
        (("10.0.0.1",), "192.0.2.9", "203.0.113.1", "192.0.2.9"),  # not from the proxy
        (("10.0.0.1",), "10.0.0.1", "203.0.113.1", "203.0.113.1"),
        (("10.0.0.1",), "10.0.0.1", "1.1.1.1, 203.0.113.1", "203.0.113.1"),
        (("10.0.0.0/8",), "10.0.0.1", "203.0.113.1, 10.2.3.4", "203.0.113.1"),  # two proxies
        (("10.0.0.0/8",), "10.0.0.1", "10.9.9.9", "10.9.9.9"),  # only proxies: the furthest
        (("10.0.0.1",), "10.0.0.1", None, "10.0.0.1"),  # the proxy itself
        (("10.0.0.1",), "10.0.0.1", "", "10.0.0.1"),
        (("10.0.0.1",), "10.0.0.1", " 2001:db8::1 ", "2001:db8::1"),
        (("10.0.0.1",), "10.0.0.1", "junk", "junk"),
        (("::1",), "::1", "203.0.113.5", "203.0.113.5"),
    ],
)
def test_client_address(settings, rf, trusted, remote, forwarded, client):
    from courseprogress.throttling import client_address

    settings.TRUSTED_PROXIES = tuple(ipaddress.ip_network(net) for net in trusted)
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(rf.get("/", **extra)) == client


def reload_settings(monkeypatch, **env):
    import importlib

    import config.settings as module

    monkeypatch.setenv("SECRET_KEY", "x")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    try:
        return SimpleNamespace(**vars(importlib.reload(module)))  # the values, not the module
    finally:
        monkeypatch.undo()
        importlib.reload(module)


def test_trusted_proxies_come_from_the_environment_and_gunicorn_agrees(monkeypatch):
    import runpy

    reloaded = reload_settings(monkeypatch, TRUSTED_PROXIES="10.0.0.1, 192.168.0.0/16")
    assert (
        ipaddress.ip_network("10.0.0.1"),
        ipaddress.ip_network("192.168.0.0/16"),
    ) == reloaded.TRUSTED_PROXIES
    assert reload_settings(monkeypatch, TRUSTED_PROXIES=None).TRUSTED_PROXIES == ()
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16")
    conf = runpy.run_path("config/gunicorn.conf.py")
    assert conf["forwarded_allow_ips"] == "10.0.0.1, 192.168.0.0/16"
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert runpy.run_path("config/gunicorn.conf.py")["forwarded_allow_ips"] == ""


def test_a_bad_trusted_proxy_stops_the_start(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        reload_settings(monkeypatch, TRUSTED_PROXIES="10.0.0.1, proxy.example")


# --- where the counts live -------------------------------------------------------------------


def test_without_redis_the_counts_live_in_the_database(monkeypatch):
    """Shared by every gunicorn worker, unlike local memory (one count per process)."""
    reloaded = reload_settings(monkeypatch, REDIS_URL=None)
    assert reloaded.THROTTLE_CACHE == "throttle"
    assert reloaded.CACHES["throttle"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    reloaded = reload_settings(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/9")
    assert reloaded.THROTTLE_CACHE == "default"
    assert "throttle" not in reloaded.CACHES


def test_the_token_limit_is_stored_where_settings_say(tight, anon, learner):
    from django.conf import settings
    from django.core.cache import caches

    token_request(anon)
    assert caches[settings.THROTTLE_CACHE].get("throttle_auth_token_127.0.0.1")


# --- one sliding log, whatever stores it ------------------------------------------------------


@pytest.fixture(params=["redis", "database"])
def throttle_store(request, settings, db):
    """The two stores of the counts: Redis (one script per request, courseprogress/throttling.py)
    and, without REDIS_URL, the database table (DRF's get + set)."""
    import os

    from django.core.management import call_command

    from tests.redis_tools import RedisServer, redis_cache_settings

    if request.param == "database":
        settings.CACHES = {
            **settings.CACHES,
            "throttle": {
                "BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": "courseprogress_throttle_cache",
                "KEY_PREFIX": f"throttle-test-{os.getpid()}",
            },
        }
        call_command("createcachetable", verbosity=0)
        settings.THROTTLE_CACHE = "throttle"
        yield request.param
        return
    server = RedisServer().start()
    settings.CACHES = redis_cache_settings(server.url)
    settings.THROTTLE_CACHE = "default"
    try:
        yield request.param
    finally:
        server.close()


def test_both_stores_keep_the_same_sliding_window(
    throttle_store, tight, monkeypatch, client_for, learner, course, contents, enrolled
):
    """2 a minute: a request is refused while two of the last 60 s were let through, and
    Retry-After says when the oldest of them leaves the window."""
    from courseprogress.throttling import ProgressUpdateThrottle

    clock = [1_700_000_000.0]
    monkeypatch.setattr(ProgressUpdateThrottle, "timer", staticmethod(lambda: clock[0]))
    body = {
        "courseId": course.pk,
        "courseContentId": contents[0].pk,
        "progressStatus": "IN_PROGRESS",
    }
    client = client_for(learner)
    seen = []
    for at in (0, 10, 20, 30, 61, 62, 71):
        clock[0] = 1_700_000_000.0 + at
        response = client.post("/user-progress/update", body, format="json")
        seen.append((at, response.status_code, response.get("Retry-After")))
    assert seen == [
        (0, 200, None),
        (10, 200, None),
        (20, 429, "40"),
        (30, 429, "30"),
        (61, 200, None),  # the request of 0 s has left the window
        (62, 429, "8"),
        (71, 200, None),
    ]
