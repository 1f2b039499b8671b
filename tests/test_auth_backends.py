"""CachedPermissionsBackend: ModelBackend with each user's permission set in the shared cache.

Every permission change made through the ORM takes effect at once; whatever sends no signal
takes at most AUTH_PERMISSION_CACHE_TTL seconds; cache errors fall back to the tables.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courseprogress import safe_cache
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
    assert has_perm(learner) == (True, 2)  # ModelBackend: own and group permissions
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
    assert has_perm(learner) == (True, 2)
    with committed():
        learner.user_permissions.remove(grant)  # the invalidation fails quietly
    assert has_perm(learner) == (False, 2)
