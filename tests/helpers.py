"""Small helpers shared by the endpoint tests."""

import time

from django.core.cache import cache

from progress.models import ContentProgress, Enrollment


def snapshot():
    """Everything stored about progress, to show that a refused request changed nothing."""
    return (
        list(ContentProgress.objects.order_by("id").values()),
        list(Enrollment.objects.order_by("id").values()),
    )


def post_update(client, **body):
    return client.post("/user-progress/update", body, format="json")


def seconds_left(key: str) -> float:
    """How long the default cache keeps this entry (Redis or local memory); 0 when absent."""
    if hasattr(cache, "pttl"):  # django-redis
        return max(cache.pttl(key), 0) / 1000
    expiry = cache._expire_info.get(cache.make_and_validate_key(key))
    return 0 if expiry is None else max(expiry - time.time(), 0)


def expire(key: str) -> None:
    """What the end of an entry's TTL does, without waiting for it."""
    assert cache.touch(key, 0) or cache.get(key) is None
    assert cache.get(key) is None
