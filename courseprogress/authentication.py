"""DRF token authentication with the token -> user lookup cached for a few seconds.

DRF's TokenAuthentication reads the token and its user from the database on every request: on
a cached read that one query is a large share of the request (bench/RESULTS.md). This class
keeps the result in the cache (Redis) for AUTH_TOKEN_CACHE_TTL seconds (default 30; 0 turns
the cache off) and is otherwise DRF's class: same header, same errors, same (user, token).

How long can a revoked credential keep working?
- A token deleted or rotated (`drf_create_token -r` deletes and re-creates), a user saved
  (deactivated, demoted, renamed) or deleted: the entries are dropped as soon as the transaction
  commits (receivers below, connected in every Django process).
- Whatever sends no signal (QuerySet.update(), raw SQL, an invalidation that could not reach
  Redis), and a request that read the user
  just before the change committed and stores the entry just after it was dropped: at most
  AUTH_TOKEN_CACHE_TTL seconds, the lifetime of an entry. That is the documented bound.
Only successful lookups are cached; an unknown token always goes to the database, so a new
token works at once. `is_active` is checked on every request, as DRF does.

What is cached: the user's concrete fields except the password hash, under a hash of the token
(never the token itself). The user is rebuilt with the password deferred, so that a save() of
request.user can never write an empty password. Permissions are not part of the entry: the
authentication backend caches them per user, with its own invalidation
(courseprogress/auth_backends.py). Once a process has seen a token, it reads the token's entry
and its user's permission set in one round trip (MGET) and hands the set to the backend
(_cache_get, auth_backends.prime): one Redis read per request instead of two, each entry still
read fresh every request.

A miss (a new token, or an entry that expired: a learner whose client posts every minute meets
one on nearly every post) is one statement: the token, its user and the user's permission names
together (_read_credentials), where DRF's lookup and ModelBackend took three.

Redis errors never fail a request: any cache error means a database lookup.
"""

import functools
import hashlib
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models.base import ModelState
from django.db.models.expressions import RawSQL
from django.db.models.signals import post_delete, post_init, post_save, pre_init
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from courseprogress import auth_backends
from courseprogress.safe_cache import safe_delete_many, safe_get, safe_get_many, safe_set

logger = logging.getLogger(__name__)

DEFAULT_TTL = 30
SECRET_FIELDS = frozenset({"password"})


def cache_ttl() -> int:
    return int(getattr(settings, "AUTH_TOKEN_CACHE_TTL", DEFAULT_TTL))


def cache_key(token_key: str) -> str:
    digest = hashlib.sha256(token_key.encode()).hexdigest()
    return f"authtoken:{_layout()}:{digest}"


@functools.cache
def _layout() -> str:
    """The user model's fields, as a short hash: an entry cached by a process with other fields
    (a deploy that changes the user model) is never read as this one's."""
    names = ",".join(field.attname for field in get_user_model()._meta.concrete_fields)
    return hashlib.blake2b(names.encode(), digest_size=4).hexdigest()


def _user_fields(user) -> dict:
    return {
        field.attname: getattr(user, field.attname)
        for field in user._meta.concrete_fields
        if field.attname not in SECRET_FIELDS
    }


def _entry(token) -> dict:
    return {"user": _user_fields(token.user), "created": token.created}


def _rebuild(key: str, entry: dict):
    """The (user, token) pair from a cache entry; the password stays deferred."""
    User = get_user_model()
    fields = entry["user"]
    user = _from_db(User, fields)
    token = _from_db(Token, {"key": key, "user_id": user.pk, "created": entry["created"]})
    token.user = user
    return user, token


def _from_db(model, values: dict):
    """What `model.from_db()` builds from these attribute values (the fields left out stay
    deferred), without Model.__init__'s per-field loop when nothing listens to the init
    signals: this runs on every authenticated request."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(DEFAULT_DB_ALIAS, list(values), list(values.values()))
    instance = model.__new__(model)
    instance.__dict__.update(values)  # a field missing here is loaded on access, as deferred
    state = instance._state = ModelState()
    state.adding = False
    state.db = DEFAULT_DB_ALIAS
    return instance


class CachedTokenAuthentication(TokenAuthentication):
    """TokenAuthentication whose token -> user lookup is cached for AUTH_TOKEN_CACHE_TTL s."""

    def authenticate_credentials(self, key):
        ttl = cache_ttl()
        if ttl <= 0:
            return super().authenticate_credentials(key)
        entry, prefetched = _cache_get(cache_key(key))
        if entry is not None:
            try:
                user, token = _rebuild(key, entry)
            except Exception:  # an entry this code cannot read (a bug): the database answers
                logger.warning("Ignoring an unreadable cached token entry", exc_info=True)
            else:
                if not user.is_active:
                    raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
                _remember_user(cache_key(key), user.pk)
                holder, perms = prefetched
                if holder == user.pk:
                    auth_backends.prime(user, perms)
                return user, token
        user, token, perms = _read_credentials(key)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        safe_set(cache_key(key), _entry(token), ttl)
        if perms is not None and not user.is_superuser:
            auth_backends.store(user.pk, perms)
            auth_backends.prime(user, perms)
        _remember_user(cache_key(key), user.pk)
        return user, token


def _read_credentials(key: str):
    """(user, token, permission set or None) in one statement: DRF's token lookup (the token
    with its user) and, when the backend caches them, the user's permission names beside it
    (auth_backends.permission_names_sql), which DRF's path reads in two more queries later in
    the request. Unknown token: AuthenticationFailed, as DRF."""
    tokens = Token.objects.select_related("user")
    prefetch = auth_backends.prefetchable()
    if prefetch:
        qn = connection.ops.quote_name
        user_id = f"{qn(Token._meta.db_table)}.{qn(Token._meta.get_field('user').column)}"
        tokens = tokens.annotate(
            permission_names=RawSQL(auth_backends.permission_names_sql(user_id), ())
        )
    try:
        token = tokens.get(key=key)
    except Token.DoesNotExist:
        raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
    perms = frozenset(auth_backends.permission_names(token.permission_names)) if prefetch else None
    return token.user, token, perms


# Token entry key -> the id of the token's user, as this process has seen it. A token's user
# never changes (a rotated token is a new key), and the entry is still read from Redis every
# request, so a revoked token or a changed user stops at once as before: this only tells whose
# permission set to fetch in the same round trip (MGET) as the entry. Whatever it says is
# checked against the entry's user before the set is used.
_TOKEN_USERS: dict[str, int] = {}
_TOKEN_USERS_MAX = 50_000


def _remember_user(entry_key: str, user_id: int) -> None:
    if _TOKEN_USERS.get(entry_key) != user_id:
        if len(_TOKEN_USERS) >= _TOKEN_USERS_MAX:
            _TOKEN_USERS.clear()
        _TOKEN_USERS[entry_key] = user_id


def _cache_get(key: str) -> tuple[dict | None, tuple[int | None, object]]:
    """The token's entry (None: no usable entry), and (user id, permission set) of the user
    this process last saw with the token, read in the same round trip ((None, None): not
    fetched)."""
    user_id = _TOKEN_USERS.get(key)
    if user_id is None or not auth_backends.prefetchable():
        entry, perms = safe_get(key), None
    else:
        perms_key = auth_backends.cache_key(user_id)
        found = safe_get_many([key, perms_key])
        entry, perms = found.get(key), found.get(perms_key)
    if not (isinstance(entry, dict) and "user" in entry):
        return None, (None, None)
    return entry, (user_id, perms) if perms is not None else (None, None)


def forget_tokens(keys) -> None:
    """Drop the cached entries of these token keys (best effort; the TTL bounds the rest)."""
    safe_delete_many(cache_key(key) for key in keys)


# --- invalidation -----------------------------------------------------------------------------


def _token_changed(sender, instance, **kwargs):
    key = instance.key
    transaction.on_commit(lambda: forget_tokens([key]))


def _user_changed(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    keys = list(Token.objects.filter(user_id=instance.pk).values_list("key", flat=True))
    if keys:
        transaction.on_commit(lambda: forget_tokens(keys))


def connect() -> None:
    """Connect the receivers (idempotent); called from CourseprogressConfig.ready(), so in every
    process (commands included). A deleted user needs no receiver of its own: its tokens are
    deleted first, each through _token_changed."""
    User = get_user_model()
    post_save.connect(_token_changed, sender=Token, dispatch_uid="authtoken-cache-token-saved")
    post_delete.connect(_token_changed, sender=Token, dispatch_uid="authtoken-cache-token-deleted")
    post_save.connect(_user_changed, sender=User, dispatch_uid="authtoken-cache-user-saved")
