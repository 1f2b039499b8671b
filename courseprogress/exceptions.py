"""Every failure under the API paths as {"success": false, "message": ...[, "errors": ...]}."""

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError, connection
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from courseprogress.renderers import EnvelopeJSONRenderer

logger = logging.getLogger("courseprogress.api")

STATUS_MESSAGES = {
    400: "Invalid request",
    401: "Authentication credentials were not provided or are invalid",
    403: "Access denied",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class AccessDenied(exceptions.PermissionDenied):
    """A 403 that says why in `errors`, when the reason leaks nothing about other users' data
    (what the caller may do, never whether an id exists). The message stays "Access denied"."""

    def __init__(self, field: str, reason: str):
        super().__init__()
        self.reasons = {field: [reason]}


class Conflict(Exception):
    """A request that is well formed but not allowed in the current state (409)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(Exception):
    """A domain error: the course, user or enrollment named does not exist (404)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidQuery(Exception):
    """A domain error: query parameters outside their allowed set (400 with `errors`)."""

    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


def failure(status_code: int, message: str | None = None, errors: dict | None = None) -> dict:
    body = {"success": False, "message": message or STATUS_MESSAGES.get(status_code, "Error")}
    if errors is not None:
        body["errors"] = errors
    return body


def json_failure(status_code: int, message: str | None = None) -> JsonResponse:
    return JsonResponse(failure(status_code, message), status=status_code)


def _errors(detail) -> dict:
    """A ValidationError's detail as {"field": ["message", ...]}."""
    if not isinstance(detail, dict):
        return {"non_field_errors": list(_messages(detail))}
    return {str(field): list(_messages(value)) for field, value in detail.items()}


def _messages(value, prefix=""):
    """Flatten nested errors (list items, nested objects) into readable messages."""
    if isinstance(value, dict):
        for key, inner in value.items():
            label = f"item {key}" if isinstance(key, int) else str(key)
            yield from _messages(inner, f"{prefix}{label}: ")
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _messages(inner, prefix)
    else:
        yield f"{prefix}{value}"


# SQLSTATE classes that mean "the database cannot serve this now; the same request may succeed
# later": connection exceptions, insufficient resources, operator intervention (shutdown,
# statement timeout), transaction rollback (deadlock, serialization failure).
RETRYABLE_SQLSTATE_CLASSES = ("08", "53", "57", "40")
RETRY_AFTER_SECONDS = 5


def database_unavailable(exc) -> bool:
    if isinstance(exc, InterfaceError):  # the connection was already closed under us
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(RETRYABLE_SQLSTATE_CLASSES)
    if connection.vendor == "sqlite":
        return "locked" in str(exc)
    return True  # no answer from the server at all (refused, reset, shutting down)


def api_exception_handler(exc, context):
    # Errors are JSON for every client, including browsers that asked for the browsable API.
    request = context.get("request")
    if request is not None:
        request.accepted_renderer = EnvelopeJSONRenderer()
        request.accepted_media_type = "application/json"

    if isinstance(exc, NotFound):
        exc = exceptions.NotFound(exc.message)
    elif isinstance(exc, InvalidQuery):
        exc = exceptions.ValidationError(exc.errors)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(exc.args[0] if exc.args else None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        set_rollback()
        return Response(failure(413), status=413)
    elif isinstance(exc, TooManyFieldsSent):
        set_rollback()
        message = (
            f"Too many query parameters or form fields (at most "
            f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})."
        )
        return Response(failure(400, message), status=400)
    elif isinstance(exc, SuspiciousOperation):  # Django answers these with a 400 too
        set_rollback()
        return Response(failure(400), status=400)

    if isinstance(exc, Conflict):
        set_rollback()
        return Response(failure(409, exc.message), status=409)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )

    if isinstance(exc, exceptions.ValidationError):
        set_rollback()
        return Response(failure(400, "Validation failed", _errors(exc.detail)), status=400)

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        code = exc.status_code
        if code in (401, 403):  # the same words whatever went wrong, so nothing leaks
            message = STATUS_MESSAGES[code]
        else:
            message = str(exc.detail) if isinstance(exc.detail, str) else None
        set_rollback()
        body = failure(code, message, getattr(exc, "reasons", None))
        return Response(body, status=code, headers=headers)

    if database_unavailable(exc):
        logger.warning("Database unavailable in %s: %s", _view_name(context), exc)
        set_rollback()
        return Response(
            failure(503, "The service is briefly unavailable; please retry."),
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    # Anything else is a bug: log it with its traceback, answer with no detail.
    logger.exception("Unhandled error in %s", _view_name(context))
    set_rollback()
    return Response(failure(500), status=500)


def _view_name(context) -> str:
    return context.get("view").__class__.__name__
