"""Cache calls that never fail a request: any error is logged and taken as a miss.

django-redis already ignores connection errors (IGNORE_EXCEPTIONS), but not everything: a
deployment may run without that option, a value may fail to pickle. The token, permission and
read caches all go through these calls, logged on `courseprogress.cache`, whose filter
(courseprogress.log.QuietCacheErrors) turns the errors into one warning line a second.
"""

import logging

from django.core.cache import cache

logger = logging.getLogger("courseprogress.cache")


def safe_get(key: str, default=None):
    try:
        return cache.get(key, default)
    except Exception:  # Redis down or hung: the database answers
        logger.warning("Cache read of %s failed", key, exc_info=True)
        return default


def safe_get_many(keys: list[str]) -> dict:
    """The entries found, in one round trip (MGET); {} when the cache fails."""
    try:
        return cache.get_many(keys)
    except Exception:
        logger.warning("Cache read of %s failed", ", ".join(keys), exc_info=True)
        return {}


def safe_set(key: str, value, ttl: int) -> None:
    try:
        cache.set(key, value, ttl)
    except Exception:
        logger.warning("Cache write of %s failed", key, exc_info=True)


def safe_delete_many(keys) -> None:
    """Best effort: what is not deleted is bounded by its TTL or by a stamp check."""
    keys = list(keys)
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except Exception:
        logger.warning("Cache delete of %d keys failed", len(keys), exc_info=True)
