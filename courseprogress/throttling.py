"""Rate limits, counted where every worker sees them: Redis, or without REDIS_URL a table in
the database (settings.THROTTLE_CACHE), never a single process's memory.

Rates come from settings.THROTTLE_RATES (set from the environment; "off" switches one off) and
are read on every request, not frozen at import. With Redis unreachable the counters cannot be
read and requests are let through (fail open): availability over strictness, logged by the
cache layer.
"""

import hashlib
import ipaddress
import logging

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger("courseprogress.cache")


def _address(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address) -> bool:
    return address is not None and any(address in net for net in settings.TRUSTED_PROXIES)


def client_address(request) -> str:
    """The address of the client, as far as this server can know it.

    The socket's peer (REMOTE_ADDR), unless that peer is one of settings.TRUSTED_PROXIES: then
    X-Forwarded-For is read from the right (each proxy appends the address it was called from)
    and the first address that is not a trusted proxy is the client. Whatever a client writes
    into the header itself sits further left and is never reached. With no trusted proxies (the
    default) the header is ignored: a client cannot choose its identity, nor take another's.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    if not settings.TRUSTED_PROXIES or not _trusted(_address(remote)):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        address = _address(hop)
        if not _trusted(address):
            return str(address) if address is not None else hop[:64]
    return hops[0] if hops else remote  # every hop is a trusted proxy: the furthest one


class _SettingsRateThrottle(SimpleRateThrottle):
    @property
    def cache(self):
        return caches[settings.THROTTLE_CACHE]

    def get_rate(self):
        return settings.THROTTLE_RATES.get(self.scope)

    def get_ident(self, request):
        return client_address(request)


class TokenRequestThrottle(_SettingsRateThrottle):
    """POST /auth/token, per client address: slows password guessing."""

    scope = "auth_token"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


# DRF's sliding log (SimpleRateThrottle: the times of the requests let through in the last
# `duration` seconds, newest first; the ones out of the window dropped; a request refused when
# `num_requests` remain) as one Redis script: one round trip where DRF makes two (a GET, then a
# SET of the whole pickled list), and no request between them can be counted twice or lost.
# Returns {allowed, how many are in the window, the oldest time (when refused)}.
SLIDING_LOG = """
local key, now = KEYS[1], tonumber(ARGV[1])
local duration, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
while true do
    local oldest = redis.call('LINDEX', key, -1)
    if not oldest or tonumber(oldest) > now - duration then break end
    redis.call('RPOP', key)
end
local count = redis.call('LLEN', key)
if count >= limit then
    return {0, count, redis.call('LINDEX', key, -1)}
end
redis.call('LPUSH', key, ARGV[1])
redis.call('EXPIRE', key, duration)
return {1, count + 1, false}
"""
SLIDING_LOG_SHA = hashlib.sha1(SLIDING_LOG.encode()).hexdigest()


def _redis_client(cache):
    """The redis-py client behind a django-redis cache; None for any other backend (the
    database table without REDIS_URL), which keeps DRF's get + set."""
    try:
        from django_redis.cache import RedisCache
    except ImportError:  # pragma: no cover - django-redis is a dependency
        return None
    return cache.client.get_client(write=True) if isinstance(cache, RedisCache) else None


class _OneRoundTripThrottle(_SettingsRateThrottle):
    """SimpleRateThrottle's rule and answers (429, Retry-After) in one Redis round trip
    (SLIDING_LOG). Redis unreachable: let through, as DRF's get + set do when cache errors are
    ignored (fail open, logged)."""

    def allow_request(self, request, view):
        client = _redis_client(self.cache)
        if client is None or self.rate is None:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        from redis.exceptions import NoScriptError, RedisError

        self.now = self.timer()
        # A key of its own: DRF's pickled list under the plain key is another Redis type.
        keys_and_args = (self.cache.make_key(f"{self.key}:log"), repr(self.now))
        keys_and_args += (self.duration, self.num_requests)
        try:
            try:
                allowed, count, oldest = client.evalsha(SLIDING_LOG_SHA, 1, *keys_and_args)
            except NoScriptError:  # a Redis that has not seen it yet (restarted, flushed)
                allowed, count, oldest = client.eval(SLIDING_LOG, 1, *keys_and_args)
        except RedisError:
            logger.warning("Throttle count of %s failed", self.key, exc_info=True)
            return True
        if allowed:
            return True
        # What wait() reads: as many entries as the window holds, the oldest last.
        self.history = [self.now] * (count - 1) + [float(oldest)] if count else []
        return self.throttle_failure()


class ProgressUpdateThrottle(_OneRoundTripThrottle):
    """POST /user-progress/update, per user (a player reports every few seconds)."""

    scope = "progress_update"

    def get_cache_key(self, request, view):
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
