"""Rate limits, counted where every worker sees them: Redis, or without REDIS_URL a table in
the database (settings.THROTTLE_CACHE), never a single process's memory.

Rates come from settings.THROTTLE_RATES (set from the environment; "off" switches one off) and
are read on every request, not frozen at import. With Redis unreachable the counters cannot be
read and requests are let through (fail open): availability over strictness, logged by the
cache layer.
"""

import ipaddress

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle


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


class ProgressUpdateThrottle(_SettingsRateThrottle):
    """POST /user-progress/update, per user (a player reports every few seconds)."""

    scope = "progress_update"

    def get_cache_key(self, request, view):
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
