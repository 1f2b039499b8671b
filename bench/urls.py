"""The app's URLs plus /bench/bare: the constant the benchmark measures every endpoint against.

The bench's gunicorn runs with ROOT_URLCONF=bench.urls, under the same settings, middleware and
workers as the app, so the bare view pays exactly the per-request cost that every endpoint pays
before it does any work of its own (WSGI, middleware, URL resolution, JSON response).
"""

from django.http import JsonResponse
from django.urls import include, path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

BARE_BODY = {"success": True, "message": "ok", "results": {"bench": "bare"}}


def bare(request):
    """A constant small JSON body: no authentication, no database, no cache."""
    return JsonResponse(BARE_BODY)


class Floor(APIView):
    """The framework's floor: what every API endpoint pays before doing any work of its own.

    DRF dispatch with the app's settings (cached token authentication, IsAuthenticated, content
    negotiation, the envelope renderer) and a constant body. No endpoint can be faster than this;
    its ratio to the bare view is the ceiling of every ratio in the table."""

    permission_classes = [IsAuthenticated]
    success_message = "ok"

    def get(self, request):
        return Response({"bench": "floor"})


urlpatterns = [
    path("bench/bare", bare, name="bench-bare"),
    path("bench/drf", Floor.as_view(), name="bench-drf"),
    path("", include("config.urls")),
]
