"""Rate limits, counted in the shared cache (Redis in production) so every worker sees them.

Rates come from settings.THROTTLE_RATES (set from the environment; "off" switches one off) and
are read on every request, not frozen at import. With Redis unreachable the counters cannot be
read and requests are let through (fail open): availability over strictness, logged by the
cache layer.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        return settings.THROTTLE_RATES.get(self.scope)


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
