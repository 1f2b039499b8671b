"""CachedTokenAuthentication: DRF's token auth with the token -> user lookup cached briefly.

A revoked token or a deactivated user stops working at once where a signal is sent, and within
AUTH_TOKEN_CACHE_TTL seconds where none is; cache errors fall back to the database.
"""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from courseprogress import authentication, safe_cache
from courseprogress.authentication import CachedTokenAuthentication, cache_key
from tests.helpers import expire, seconds_left
from tests.redis_tools import free_port, redis_cache_settings

# Every write that a request would commit runs in `with committed():`, which runs its on_commit
# receivers (the cache invalidation) as the commit would.
pytestmark = pytest.mark.django_db


class WhoAmI(APIView):
    authentication_classes = [CachedTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"id": request.user.pk, "username": request.user.username})


def call(key: str):
    request = APIRequestFactory().get("/whoami", HTTP_AUTHORIZATION=f"Token {key}")
    response = WhoAmI.as_view()(request)
    response.render()
    return response


def token_queries(key: str) -> tuple[int, int]:
    """(status, number of queries that read the token table) for one request."""
    with CaptureQueriesContext(connection) as ctx:
        response = call(key)
    reads = [q for q in ctx.captured_queries if "authtoken_token" in q["sql"]]
    return response.status_code, len(reads)


@pytest.fixture
def token(learner):
    return Token.objects.create(user=learner)


def test_second_request_is_authenticated_from_the_cache(token, learner):
    assert token_queries(token.key) == (200, 1)
    assert token_queries(token.key) == (200, 0)
    assert call(token.key).data == {"id": learner.pk, "username": learner.username}


def test_unknown_token_is_refused_and_not_remembered(learner, committed):
    key = "f" * 40
    assert call(key).status_code == 401
    assert cache.get(cache_key(key)) is None
    with committed():
        Token.objects.create(user=learner, key=key)
    assert call(key).status_code == 200  # a new token works at once


def test_deleted_token_stops_working_at_once(token, committed):
    assert call(token.key).status_code == 200
    with committed():
        token.delete()
    assert call(token.key).status_code == 401


def test_rotated_token_old_key_refused_new_key_accepted(token, learner, committed):
    assert call(token.key).status_code == 200
    old = token.key
    with committed():
        token.delete()  # what `drf_create_token -r` and DRF's docs do
    with committed():
        new = Token.objects.create(user=learner)
    assert call(old).status_code == 401
    assert call(new.key).status_code == 200


def test_inactive_user_is_refused(make_user):
    user = make_user("sleeper", is_active=False)
    token = Token.objects.create(user=user)
    assert call(token.key).status_code == 401
    assert cache.get(cache_key(token.key)) is None


def test_deactivated_user_is_refused_at_once(token, learner, committed):
    assert call(token.key).status_code == 200
    learner.is_active = False
    with committed():
        learner.save()
    assert call(token.key).status_code == 401


def test_deleted_user_is_refused_at_once(token, learner, committed):
    assert call(token.key).status_code == 200
    with committed():
        learner.delete()
    assert call(token.key).status_code == 401


def test_without_a_signal_the_entry_lives_at_most_the_ttl(settings, token, learner):
    settings.AUTH_TOKEN_CACHE_TTL = 5
    assert call(token.key).status_code == 200
    type(learner).objects.filter(pk=learner.pk).update(is_active=False)  # sends no signal
    assert call(token.key).status_code == 200  # the documented window
    assert 0 < seconds_left(cache_key(token.key)) <= 5
    expire(cache_key(token.key))  # the TTL passes
    assert call(token.key).status_code == 401


def test_ttl_zero_turns_the_cache_off(settings, token):
    settings.AUTH_TOKEN_CACHE_TTL = 0
    assert token_queries(token.key) == (200, 1)
    assert token_queries(token.key) == (200, 1)
    assert cache.get(cache_key(token.key)) is None


def test_the_entry_holds_neither_the_token_nor_the_password(token, learner):
    call(token.key)
    assert token.key not in cache_key(token.key)
    entry = cache.get(cache_key(token.key))
    assert entry["user"]["id"] == learner.pk
    assert "password" not in entry["user"]
    assert learner.password not in repr(entry)


def test_saving_the_cached_user_keeps_the_password(token, learner, committed):
    call(token.key)
    hashed = type(learner).objects.get(pk=learner.pk).password
    response_user, _ = authentication.CachedTokenAuthentication().authenticate_credentials(
        token.key
    )
    response_user.first_name = "Renamed"
    with committed():
        response_user.save()
    fresh = type(learner).objects.get(pk=learner.pk)
    assert (fresh.first_name, fresh.password) == ("Renamed", hashed)


def test_a_grant_takes_effect_at_once_for_a_cached_token(token, learner, committed):
    """The token entry holds no permissions; the backend's own cache drops them on a grant."""
    from django.contrib.auth.models import Permission

    call(token.key)
    user, _ = CachedTokenAuthentication().authenticate_credentials(token.key)
    assert not user.has_perm("progress.view_all_progress")
    with committed():
        learner.user_permissions.add(Permission.objects.get(codename="view_all_progress"))
    user, _ = CachedTokenAuthentication().authenticate_credentials(token.key)
    assert user.has_perm("progress.view_all_progress")


def test_cache_errors_fall_back_to_the_database(monkeypatch, token, committed):
    def broken(*args, **kwargs):
        raise ConnectionError("cache is down")

    monkeypatch.setattr(safe_cache.cache, "get", broken)
    monkeypatch.setattr(safe_cache.cache, "set", broken)
    monkeypatch.setattr(safe_cache.cache, "delete_many", broken)
    assert token_queries(token.key) == (200, 1)
    assert token_queries(token.key) == (200, 1)
    with committed():
        token.delete()  # the invalidation fails quietly; the database says no
    assert call(token.key).status_code == 401


@pytest.mark.parametrize("ignore_exceptions", [True, False])
def test_redis_unreachable_falls_back_to_the_database(
    settings, token, ignore_exceptions, committed
):
    caches = redis_cache_settings(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.1)
    caches["default"]["OPTIONS"]["IGNORE_EXCEPTIONS"] = ignore_exceptions
    settings.CACHES = caches
    settings.THROTTLE_CACHE = "default"
    assert token_queries(token.key) == (200, 1)
    assert token_queries(token.key) == (200, 1)
    with committed():
        token.delete()
    assert call(token.key).status_code == 401


@pytest.mark.parametrize("listening", [False, True])
def test_the_cached_pair_is_what_from_db_builds(token, learner, listening):
    """The rebuilt user and token equal Django's from_db() objects, the password deferred,
    whether or not something listens to the models' init signals (then from_db() itself runs)."""
    from django.db.models.signals import post_init

    def receiver(sender, instance, **kwargs):
        seen.append(sender)

    seen: list = []
    call(token.key)  # fills the entry
    if listening:
        post_init.connect(receiver, sender=type(learner))
    try:
        user, rebuilt = authentication.CachedTokenAuthentication().authenticate_credentials(
            token.key
        )
    finally:
        post_init.disconnect(receiver, sender=type(learner))
    assert seen == ([type(learner)] if listening else [])
    reference = type(learner).objects.defer("password").get(pk=learner.pk)
    fields = [f.attname for f in type(learner)._meta.concrete_fields if f.attname != "password"]
    assert [getattr(user, f) for f in fields] == [getattr(reference, f) for f in fields]
    assert user.get_deferred_fields() == {"password"}
    assert (user._state.adding, user._state.db) == (False, "default")
    assert (rebuilt.key, rebuilt.user_id, rebuilt.created) == (token.key, learner.pk, token.created)
    assert rebuilt.user is user and rebuilt._state.adding is False


# --- the token entry and the permission set in one read ---------------------------------------

VIEW_ALL = "progress.view_all_progress"


def authenticated(key: str):
    user, _ = CachedTokenAuthentication().authenticate_credentials(key)
    return user


def test_a_grant_or_a_revocation_reaches_a_warm_token_at_once(token, learner, committed):
    """Once a process has seen a token, the token's entry and its user's permission set are
    read together (one MGET): both still come from the cache on every request, so a change
    is seen on the next one."""
    from django.contrib.auth.models import Permission

    grant = Permission.objects.get(codename="view_all_progress")
    assert [authenticated(token.key).has_perm(VIEW_ALL) for _ in range(3)] == [False] * 3
    with committed():
        learner.user_permissions.add(grant)
    assert [authenticated(token.key).has_perm(VIEW_ALL) for _ in range(2)] == [True] * 2
    with committed():
        learner.user_permissions.remove(grant)
    assert authenticated(token.key).has_perm(VIEW_ALL) is False


def test_the_token_entry_and_the_permission_set_are_one_cache_read(monkeypatch, token, learner):
    from courseprogress import auth_backends

    for _ in range(2):  # the entries stored, the token's user learned
        authenticated(token.key).has_perm(VIEW_ALL)
    reads, inside = [], []
    real_get, real_get_many = safe_cache.cache.get, safe_cache.cache.get_many

    def get(key, *args, **kwargs):
        if not inside:  # local memory's get_many is a loop of get()s
            reads.append(("get", key))
        return real_get(key, *args, **kwargs)

    def get_many(keys, *args, **kwargs):
        reads.append(("get_many", list(keys)))
        inside.append(True)
        try:
            return real_get_many(keys, *args, **kwargs)
        finally:
            inside.pop()

    monkeypatch.setattr(safe_cache.cache, "get", get)
    monkeypatch.setattr(safe_cache.cache, "get_many", get_many)
    with CaptureQueriesContext(connection) as queries:
        assert authenticated(token.key).has_perm(VIEW_ALL) is False
    assert reads == [("get_many", [cache_key(token.key), auth_backends.cache_key(learner.pk)])]
    assert len(queries) == 0


def test_a_permission_set_read_for_another_user_is_never_used(token, learner, make_user):
    """What the process remembers about a token only says which set to read with its entry;
    the set is used only when the entry's user is the one it was read for."""
    privileged = make_user("privileged", perms=["view_all_progress"])
    assert type(privileged).objects.get(pk=privileged.pk).has_perm(VIEW_ALL)  # now cached
    authenticated(token.key)  # the entry cached
    authentication._TOKEN_USERS[cache_key(token.key)] = privileged.pk
    assert authenticated(token.key).has_perm(VIEW_ALL) is False
    assert authentication._TOKEN_USERS[cache_key(token.key)] == learner.pk
