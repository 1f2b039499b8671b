"""CachedPermissionsBackend: ModelBackend with each user's permission set in the shared cache.

Every permission change made through the ORM takes effect at once; whatever sends no signal
takes at most AUTH_PERMISSION_CACHE_TTL seconds; cache errors fall back to the tables.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIRequestFactory

from courseprogress import auth_backends, authentication, safe_cache
from courseprogress.auth_backends import cache_key
from tests.helpers import expire, seconds_left

# Every write that a request would commit runs in `with committed():`, which runs its on_commit
# receivers (the cache invalidation) as the commit would.
pytestmark = pytest.mark.django_db

VIEW_ALL = "progress.view_all_progress"


def fresh(user):
    """The user as the next request loads it (no per-request permission memo)."""
    return get_user_model().objects.get(pk=user.pk)


def has_perm(user, perm: str = VIEW_ALL) -> tuple[bool, int]:
    """(has_perm on a freshly loaded user, queries on the permission tables it made)."""
    user = fresh(user)
    with CaptureQueriesContext(connection) as ctx:
        allowed = user.has_perm(perm)
    return allowed, sum("auth_permission" in q["sql"] for q in ctx.captured_queries)


@pytest.fixture
def grant():
    return Permission.objects.get(codename="view_all_progress")


def test_the_backend_is_the_configured_one(settings):
    assert settings.AUTHENTICATION_BACKENDS == [
        "courseprogress.auth_backends.CachedPermissionsBackend"
    ]


def test_the_second_request_reads_no_permission_table(learner, grant, committed):
    with committed():
        learner.user_permissions.add(grant)
    assert has_perm(learner) == (True, 1)  # own and group permissions, one statement
    assert has_perm(learner) == (True, 0)
    assert has_perm(learner, "progress.update_any_progress") == (False, 0)


def test_a_granted_or_revoked_permission_takes_effect_at_once(learner, grant, committed):
    assert has_perm(learner)[0] is False
    with committed():
        learner.user_permissions.add(grant)
    assert has_perm(learner)[0] is True
    with committed():
        learner.user_permissions.remove(grant)
    assert has_perm(learner)[0] is False
    with committed():
        grant.user_set.add(learner)  # from the permission's side
    assert has_perm(learner)[0] is True
    with committed():
        learner.user_permissions.clear()
    assert has_perm(learner)[0] is False


def test_group_changes_take_effect_at_once(learner, grant, committed):
    auditors = Group.objects.create(name="auditors")
    with committed():
        auditors.permissions.add(grant)
    assert has_perm(learner)[0] is False
    with committed():
        learner.groups.add(auditors)  # joining the group
    assert has_perm(learner)[0] is True
    with committed():
        auditors.permissions.remove(grant)  # the group loses it
    assert has_perm(learner)[0] is False
    with committed():
        grant.group_set.add(auditors)  # given back, from the permission's side
    assert has_perm(learner)[0] is True
    with committed():
        auditors.user_set.remove(learner)  # leaving, from the group's side
    assert has_perm(learner)[0] is False
    with committed():
        learner.groups.add(auditors)
    assert has_perm(learner)[0] is True
    with committed():
        auditors.delete()  # the group goes
    assert has_perm(learner)[0] is False


def test_a_deleted_permission_is_gone_at_once(learner, committed):
    auth = ContentType.objects.get_for_model(Group)
    temporary = Permission.objects.create(codename="temporary", name="Temp", content_type=auth)
    with committed():
        learner.user_permissions.add(temporary)
    assert has_perm(learner, "auth.temporary")[0] is True
    with committed():
        temporary.delete()
    assert has_perm(learner, "auth.temporary")[0] is False


def test_a_deactivated_user_has_no_permissions(learner, grant, committed):
    with committed():
        learner.user_permissions.add(grant)
    assert has_perm(learner)[0] is True
    learner.is_active = False
    with committed():
        learner.save()
    assert has_perm(learner)[0] is False


def test_without_a_signal_an_entry_lives_at_most_the_ttl(settings, learner, grant, committed):
    settings.AUTH_PERMISSION_CACHE_TTL = 5
    with committed():
        learner.user_permissions.add(grant)
    assert has_perm(learner)[0] is True
    learner.user_permissions.through.objects.filter(user_id=learner.pk).delete()  # no m2m signal
    assert has_perm(learner)[0] is True  # the documented window
    assert 0 < seconds_left(cache_key(learner.pk)) <= 5
    expire(cache_key(learner.pk))  # the TTL passes
    assert has_perm(learner)[0] is False


def test_ttl_zero_turns_the_cache_off(settings, learner, grant, committed):
    settings.AUTH_PERMISSION_CACHE_TTL = 0
    with committed():
        learner.user_permissions.add(grant)
    assert has_perm(learner) == (True, 2)
    assert has_perm(learner) == (True, 2)


def test_cache_errors_fall_back_to_the_tables(monkeypatch, learner, grant, committed):
    def broken(*args, **kwargs):
        raise ConnectionError("cache is down")

    for name in ("get", "set", "delete_many"):
        monkeypatch.setattr(safe_cache.cache, name, broken)
    with committed():
        learner.user_permissions.add(grant)
    assert has_perm(learner) == (True, 1)
    with committed():
        learner.user_permissions.remove(grant)  # the invalidation fails quietly
    assert has_perm(learner) == (False, 1)


# --- the one statement against ModelBackend ----------------------------------------------------

PERMS = ["view_all_progress", "update_any_progress", "add_group", "change_group", "delete_user"]


@examples(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    own=st.sets(st.sampled_from(PERMS)),
    groups=st.lists(st.sets(st.sampled_from(PERMS)), max_size=3),
    member_of=st.sets(st.integers(0, 2)),
)
def test_the_statement_reads_what_model_backend_reads(own, groups, member_of):
    """Random own permissions, groups with random permissions, random memberships (a permission
    both own and through a group, groups granting nothing, groups the user is not in): the one
    statement, the token lookup's annotation of it and ModelBackend name the same set."""
    by_codename = {p.codename: p for p in Permission.objects.filter(codename__in=PERMS)}
    assert set(by_codename) == set(PERMS)
    with transaction.atomic():
        user = get_user_model().objects.create_user("someone")
        bystander = get_user_model().objects.create_user("bystander")
        user.user_permissions.set([by_codename[c] for c in own])
        bystander.user_permissions.set(by_codename.values())
        for i, codenames in enumerate(groups):
            group = Group.objects.create(name=f"group {i}")
            group.permissions.set([by_codename[c] for c in codenames])
            if i in member_of:
                user.groups.add(group)
        token = Token.objects.create(user=user)
        expected = ModelBackend().get_all_permissions(fresh(user))
        assert auth_backends.read_permissions(user.pk) == expected
        assert authentication._read_credentials(token.key)[2] == expected
        transaction.set_rollback(True)


def test_a_cold_token_and_its_permissions_are_one_statement(learner, grant, committed):
    """A request whose token entry and permission set both expired (a learner posting every
    minute): the token, its user and the user's permissions come in one statement."""
    with committed():
        learner.user_permissions.add(grant)
    token = Token.objects.create(user=learner)
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {token.key}")
    with CaptureQueriesContext(connection) as ctx:
        user, _ = authentication.CachedTokenAuthentication().authenticate(request)
        assert user.has_perm(VIEW_ALL) is True
        assert user.has_perm("progress.update_any_progress") is False
    assert len(ctx.captured_queries) == 1
    assert has_perm(learner) == (True, 0)  # and the set is kept for the next requests
