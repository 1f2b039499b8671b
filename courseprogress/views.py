"""Site-wide endpoints: the index, API tokens and the health check."""

import logging
import uuid

from django.contrib.auth import authenticate
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponseRedirect, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from courseprogress import replicas
from courseprogress.apiview import ApiView
from courseprogress.exceptions import json_failure
from courseprogress.schema import envelope, responses
from courseprogress.serializers import TokenIn, TokenOut
from courseprogress.throttling import TokenRequestThrottle

logger = logging.getLogger("courseprogress.health")


class TokenView(ApiView):
    """POST /auth/token: a username and password for the user's API token."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenRequestThrottle]
    success_message = "Token issued successfully"

    def get_authenticate_header(self, request):
        return "Token"  # so that bad credentials are a 401, as everywhere else

    @extend_schema(
        operation_id="auth_token",
        summary="Get an API token",
        description=(
            "A username and password for the user's API token (the same token on every call). "
            "Send it as `Authorization: Token <token>` (in Swagger UI: Authorize, then paste "
            "`Token <token>` into apiToken).\n\n**Who:** anyone with an account; limited per "
            "client address (429 with Retry-After)."
        ),
        request=TokenIn,
        auth=[],
        responses=responses({200: envelope("TokenEnvelope", TokenOut())}, 400, 401, 429, body=True),
    )
    def post(self, request):
        serializer = TokenIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if user is None:
            raise AuthenticationFailed()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


INDEX = {
    "docs": "/api/docs/",
    "schema": "/api/schema/",
    "health": "/healthz",
    "token": "/auth/token",
    "admin": "/admin/",
}


def index(request):
    """GET /: where to go. A browser is sent to the API docs; anyone else gets the links."""
    if request.method not in ("GET", "HEAD"):
        return json_failure(405)
    if "text/html" in request.headers.get("Accept", ""):
        return HttpResponseRedirect(INDEX["docs"])
    return JsonResponse(
        {
            "success": True,
            "message": "courseprogress API: the docs are at /api/docs/",
            "results": INDEX,
        }
    )


def healthz(request):
    """200 when the database answers; the cache is "ok" or "degraded" and never fails the check,
    nor do replicas (with DATABASE_REPLICA_URLS: "replicas" is "ok" or "degraded", and
    "replicaStates" gives each replica's state, see courseprogress.replicas.health)."""
    body = {"status": "ok", "database": "ok", "cache": "ok"}
    status = 200
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.warning("Health check: the database is unreachable", exc_info=True)
        body.update(status="error", database="unavailable")
        status = 503
    probe = uuid.uuid4().hex
    try:
        cache.set("healthz:probe", probe, 10)
        if cache.get("healthz:probe") != probe:
            raise RuntimeError("the cache did not return what was stored")
    except Exception:
        logger.warning("Health check: the cache is degraded", exc_info=True)
        body["cache"] = "degraded"
    if replicas.enabled() and status == 200:
        # Reads move to the primary when a replica is down or behind: degraded, never failed.
        try:
            states = replicas.health()
        except Exception:
            logger.warning("Health check: the replicas could not be checked", exc_info=True)
            states = dict.fromkeys(replicas.aliases(), "unknown")
        body["replicas"] = "ok" if set(states.values()) == {"ok"} else "degraded"
        body["replicaStates"] = states
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response
