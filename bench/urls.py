"""The app's URLs plus /bench/bare: the constant the benchmark measures every endpoint against.

The bench's gunicorn runs with ROOT_URLCONF=bench.urls, under the same settings, middleware and
workers as the app, so the bare view pays exactly the per-request cost that every endpoint pays
before it does any work of its own (WSGI, middleware, URL resolution, JSON response).
"""

from django.http import JsonResponse
from django.urls import include, path

BARE_BODY = {"success": True, "message": "ok", "results": {"bench": "bare"}}


def bare(request):
    """A constant small JSON body: no authentication, no database, no cache."""
    return JsonResponse(BARE_BODY)


urlpatterns = [
    path("bench/bare", bare, name="bench-bare"),
    path("", include("config.urls")),
]
