"""Django's ModelBackend with each user's permission set kept in the shared cache.

ModelBackend reads two tables (the user's own permissions, their groups' permissions) the first
time a request asks has_perm(): on a progress update, where every learner's request asks whether
they are privileged, those two queries were a quarter of the write (bench/RESULTS.md). This
backend keeps the set in the cache (Redis) for AUTH_PERMISSION_CACHE_TTL seconds (default 30;
0 turns the cache off) and is otherwise ModelBackend: same answers, same rules for inactive and
anonymous users (superusers never reach a backend: User.has_perm answers True first).

How long can a revoked permission keep working?
- Changed through the ORM (a user's permissions or groups, a group's permissions, from either
  side; a group or a permission deleted; the user saved or deleted): the user's entry is dropped
  when the transaction commits, in every process where this module is imported.
- Whatever sends no signal (QuerySet.update(), raw SQL, an invalidation that could not reach
  Redis), and a request that read the old set just before the change committed and stores it
  just after the entry was dropped: at most AUTH_PERMISSION_CACHE_TTL seconds, the lifetime
  of an entry.

Redis errors never fail a request: any cache error means reading the tables, as ModelBackend.

A miss reads the set in one plain statement (permission_names_sql: the user's own permissions and
their groups', as ModelBackend unions them) instead of ModelBackend's two ORM queries: a learner
whose entries expired between two posts pays it on every post (bench/notes.md, issue 17). The
token authentication runs the same subquery inside its own token lookup, so a cold token costs
one statement in all. tests/test_auth_backends.py holds the statement to ModelBackend's answers.
"""

import functools
import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from courseprogress.safe_cache import safe_delete_many, safe_get, safe_set

DEFAULT_TTL = 30


def cache_ttl() -> int:
    return int(getattr(settings, "AUTH_PERMISSION_CACHE_TTL", DEFAULT_TTL))


def cache_key(user_id) -> str:
    return f"authperms:v1:{user_id}"


class CachedPermissionsBackend(ModelBackend):
    """ModelBackend whose per-user permission set is cached for AUTH_PERMISSION_CACHE_TTL s."""

    def get_all_permissions(self, user_obj, obj=None):
        ttl = cache_ttl()
        if (
            ttl <= 0
            or obj is not None
            or not user_obj.is_active
            or user_obj.is_anonymous
            or hasattr(user_obj, "_perm_cache")
        ):
            return super().get_all_permissions(user_obj, obj)
        key = cache_key(user_obj.pk)
        perms = safe_get(key)
        if isinstance(perms, frozenset):
            user_obj._perm_cache = set(perms)  # ModelBackend looks here for the rest of the request
            return user_obj._perm_cache
        if user_obj.is_superuser:  # every permission: ModelBackend's own rule
            perms = super().get_all_permissions(user_obj)
        else:
            perms = user_obj._perm_cache = read_permissions(user_obj.pk)
        store(user_obj.pk, frozenset(perms))
        return perms


def permission_names_sql(user_id_sql: str) -> str:
    """A scalar subquery: the permission names ("app_label.codename") of the user whose id is
    the SQL `user_id_sql`, as JSON array text (NULL or "[]" when none). ModelBackend's set for an
    active user who is not a superuser: their own permissions and their groups' permissions."""
    return _permission_names_sql(connection.vendor).replace("{user_id}", user_id_sql)


@functools.cache
def _permission_names_sql(vendor: str) -> str:
    User = get_user_model()
    qn = connection.ops.quote_name
    own, groups = User.user_permissions, User.groups
    granted = Group.permissions
    perm = Permission._meta
    content_type = perm.get_field("content_type").related_model._meta

    def table(meta):
        return qn(meta.db_table)

    names = (
        f"SELECT ct.{qn('app_label')} || '.' || p.{qn('codename')} AS name"
        f" FROM {table(perm)} p JOIN {table(content_type)} ct"
        f" ON ct.{qn(content_type.pk.column)} = p.{qn(perm.get_field('content_type').column)}"
    )
    permission_id = f"p.{qn(perm.pk.column)}"
    through = own.through._meta
    member, in_group = groups.through._meta, granted.through._meta
    aggregate = "json_agg(name)::text" if vendor == "postgresql" else "json_group_array(name)"
    return (
        f"(SELECT {aggregate} FROM ("
        f"{names} JOIN {table(through)} up"
        f" ON up.{qn(own.field.m2m_reverse_name())} = {permission_id}"
        f" WHERE up.{qn(own.field.m2m_column_name())} = {{user_id}}"
        f" UNION {names} JOIN {table(in_group)} gp"
        f" ON gp.{qn(granted.field.m2m_reverse_name())} = {permission_id}"
        f" JOIN {table(member)} ug"
        f" ON ug.{qn(groups.field.m2m_reverse_name())} = gp.{qn(granted.field.m2m_column_name())}"
        f" WHERE ug.{qn(groups.field.m2m_column_name())} = {{user_id}}"
        f") AS names)"
    )


def permission_names(value) -> set[str]:
    """The set from permission_names_sql's JSON text."""
    return set(json.loads(value)) if value else set()


def read_permissions(user_id) -> set[str]:
    """The set of an active user who is not a superuser, in one statement."""
    with connection.cursor() as cursor:
        sql = permission_names_sql("%s")  # the id appears once per source of permissions
        cursor.execute(f"SELECT {sql}", [user_id] * sql.count("%s"))
        return permission_names(cursor.fetchone()[0])


BACKEND = f"{__name__}.CachedPermissionsBackend"


def prefetchable() -> bool:
    """Whether this backend reads the permission set from the cache (so another reader in the
    same request may fetch it for it: see prime())."""
    return cache_ttl() > 0 and BACKEND in settings.AUTHENTICATION_BACKENDS


def prime(user_obj, perms) -> None:
    """Hand over the user's set as read from the cache earlier in this request: the token
    authentication reads the token's entry and this one in one round trip
    (courseprogress/authentication.py). What get_all_permissions does with a hit, under the
    same conditions; anything else is left for it to read."""
    if (
        isinstance(perms, frozenset)
        and prefetchable()
        and user_obj.is_active
        and not user_obj.is_anonymous
        and not hasattr(user_obj, "_perm_cache")
    ):
        user_obj._perm_cache = set(perms)


def store(user_id, perms: frozenset) -> None:
    """Keep a set read elsewhere in the request (the token lookup reads it with the token)."""
    safe_set(cache_key(user_id), perms, cache_ttl())


def forget_users(user_ids) -> None:
    """Drop the cached permission sets of these users (best effort; the TTL bounds the rest)."""
    safe_delete_many(cache_key(user_id) for user_id in user_ids)


# --- invalidation -----------------------------------------------------------------------------


def _forget_on_commit(users: Q) -> None:
    user_ids = list(get_user_model().objects.filter(users).values_list("pk", flat=True).distinct())
    if user_ids:
        transaction.on_commit(lambda: forget_users(user_ids))


def _holders(model, ids) -> Q | None:
    """The users whose permission set depends on these rows of `model`."""
    if issubclass(model, get_user_model()):
        return Q(pk__in=ids)
    if issubclass(model, Group):
        return Q(groups__in=ids)
    if issubclass(model, Permission):
        return Q(user_permissions__in=ids) | Q(groups__permissions__in=ids)
    return None


def _access_changed(sender, instance, action, model, pk_set, **kwargs):
    """A user's permissions or groups, or a group's permissions, changed (from either side)."""
    # Before a removal or a clear the rows still say whom it concerns; after an add, they do.
    if action not in ("pre_remove", "pre_clear", "post_add"):
        return
    users = Q(pk__in=[])
    for side, ids in ((type(instance), [instance.pk]), (model, list(pk_set or ()))):
        holders = _holders(side, ids) if ids else None
        if holders is not None:
            users |= holders
    _forget_on_commit(users)


def _access_deleted(sender, instance, **kwargs):
    """A group or a permission is about to go, and with it what it granted."""
    _forget_on_commit(_holders(type(instance), [instance.pk]))


def _user_changed(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    user_id = instance.pk
    transaction.on_commit(lambda: forget_users([user_id]))


def connect() -> None:
    """Connect the receivers (idempotent); called from CourseprogressConfig.ready()."""
    User = get_user_model()
    for through in (User.user_permissions.through, User.groups.through, Group.permissions.through):
        m2m_changed.connect(
            _access_changed, sender=through, dispatch_uid=f"authperms-{through._meta.label}"
        )
    for model in (Group, Permission):
        pre_delete.connect(
            _access_deleted, sender=model, dispatch_uid=f"authperms-{model._meta.label}-deleted"
        )
    post_save.connect(_user_changed, sender=User, dispatch_uid="authperms-user-saved")
    post_delete.connect(_user_changed, sender=User, dispatch_uid="authperms-user-deleted")
