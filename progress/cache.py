"""Cached reads that are never stale and never leak (contract 3.9).

Every cached entry is checked against a stamp read from PostgreSQL in the same request:
- one learner in a course: the enrollment's `cache_version`, bumped in the same transaction as
  every write that changes what that learner's reads show;
- a whole course: (course.updated_at, number of enrollments, sum of their cache versions), which
  moves with every enrollment or progress write in the course, every enrollment deletion and
  every change to the course's content.
An invalidation that never reached Redis therefore cannot bring an old entry back: the entry's
stamp no longer matches the database. After commit the superseded entries are also deleted, to
free memory and keep Redis small; that delete is best effort by design.

Callers authorise first; these functions only ever see requests already allowed to read.
Redis errors are ignored by django-redis (short socket timeouts, logged), so a read falls back
to the database and a write never fails because Redis is away.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery, Sum

logger = logging.getLogger("courseprogress.cache")

_MISSING = object()


def learner_key(course_id: int, user_id: int) -> str:
    return f"learner:{course_id}:{user_id}"


def analytics_key(course_id: int) -> str:
    return f"analytics:{course_id}"


def activities_key(course_id: int, user_id: int, params: dict) -> str:
    return f"activities:{course_id}:{user_id}:{params_digest(params)}"


def course_page_key(course_id: int, params: dict) -> str:
    return f"coursepage:{course_id}:{params_digest(params)}"


def params_digest(params: dict) -> str:
    canonical = "&".join(f"{key}={params[key]}" for key in sorted(params))
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def learner_version(*, course_id: int, user_id: int) -> int | None:
    """The enrollment's cache version; None when not enrolled (such reads are not cached)."""
    from progress.models import Enrollment

    return (
        Enrollment.objects.filter(user_id=user_id, course_id=course_id)
        .values_list("cache_version", flat=True)
        .first()
    )


def course_stamp(course_id: int) -> str | None:
    """A string that changes with every write in the course; None when the course does not exist."""
    from courseprogress.models import Course
    from progress.models import Enrollment

    in_course = Enrollment.objects.filter(course_id=OuterRef("pk")).order_by().values("course_id")
    row = (
        Course.objects.filter(pk=course_id)
        .annotate(
            enrollment_count=Subquery(in_course.annotate(n=Count("id")).values("n")),
            version_sum=Subquery(in_course.annotate(v=Sum("cache_version")).values("v")),
        )
        .values_list("updated_at", "enrollment_count", "version_sum")
        .first()
    )
    if row is None:
        return None
    updated_at, enrollments, versions = row
    return f"{updated_at.timestamp():.6f}:{enrollments or 0}:{versions or 0}"


def get_or_compute(key: str, stamp, compute: Callable[[], object], ttl: int):
    """The entry stored under `key` if it was made at `stamp`, else compute and store it."""
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["data"]
    data = compute()
    store(key, {"stamp": stamp, "data": data}, ttl)
    return data


def store(key: str, entry: dict, ttl: int) -> None:
    """cache.set that never fails the request: django-redis ignores connection errors, not
    errors in pickling the value (e.g. RecursionError on deeply nested metadata)."""
    try:
        cache.set(key, entry, ttl)
    except Exception:
        logger.warning("Could not cache %s", key, exc_info=True)


def get_or_compute_once(key: str, stamp, compute: Callable[[], object], ttl: int, wait=2.0):
    """As get_or_compute, but when many requests miss at once only one computes.

    The others wait up to `wait` seconds for its result, then compute themselves. A Redis
    error on the lock (add() answers None when errors are ignored) means: just compute.
    """
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["data"]
    lock_key = f"{key}:computing:{stamp}"
    acquired = cache.add(lock_key, 1, timeout=max(int(wait * 5), 5))
    if acquired is False:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(0.05)
            entry = cache.get(key)
            if isinstance(entry, dict) and entry.get("stamp") == stamp:
                return entry["data"]
    data = compute()
    store(key, {"stamp": stamp, "data": data}, ttl)
    if acquired:
        cache.delete(lock_key)
    return data


def invalidate_many_on_commit(pairs: Iterable[tuple[int, int]]) -> None:
    """Delete the superseded entries of these (user_id, course_id) pairs once the write is
    committed, in one round trip (best effort; see above)."""
    keys = set()
    for user_id, course_id in pairs:
        keys.update({learner_key(course_id, user_id), analytics_key(course_id)})
    if keys:
        transaction.on_commit(lambda: cache.delete_many(sorted(keys)))


def invalidate_on_commit(*, user_id: int, course_id: int) -> None:
    invalidate_many_on_commit([(user_id, course_id)])


def ttl(name: str) -> int:
    return getattr(settings, f"CACHE_TTL_{name}")
