"""OpenAPI descriptions of the envelope, so that generated clients see the real bodies."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers

from courseprogress.exceptions import STATUS_MESSAGES

_MESSAGES = {
    400: "Validation failed: `errors` names each field",
    401: "No or bad credentials: send `Authorization: Token <key>`",
    403: "Access denied: the caller's role does not allow this; `errors` says why when that "
    "leaks nothing",
    404: "Not found",
    405: "Method not allowed on this path",
    409: "Not allowed in the current state",
    410: "The cursor is older than the events kept: start again without `after`",
    413: "Request body too large (over 1 MiB)",
    415: "The body is not JSON: send `Content-Type: application/json`",
    429: "Too many requests: retry after Retry-After seconds",
    503: "The database is unreachable for a moment: retry after Retry-After seconds",
}
# What the body says, for the examples Swagger UI shows (courseprogress.exceptions words them).
_EXAMPLE_BODIES = {
    400: {
        "success": False,
        "message": "Validation failed",
        "errors": {"courseId": ["This field is required."]},
    },
    403: {"success": False, "message": "Access denied"},
    409: {
        "success": False,
        "message": "An enrollment cannot move from DROPPED to CERTIFIED.",
    },
    415: {"success": False, "message": 'Unsupported media type "text/plain" in request.'},
    429: {"success": False, "message": "Request was throttled. Expected available in 12 seconds."},
    503: {"success": False, "message": "The service is briefly unavailable; please retry."},
}


@extend_schema_field({"type": "boolean", "const": True})
class TrueField(serializers.BooleanField):
    """`success` of a success envelope: always true."""


@extend_schema_field({"type": "boolean", "const": False})
class FalseField(serializers.BooleanField):
    """`success` of a failure envelope: always false."""


class PaginationOut(serializers.Serializer):
    page = serializers.IntegerField(min_value=1)
    limit = serializers.IntegerField(min_value=1)
    totalItems = serializers.IntegerField(min_value=0)
    totalPages = serializers.IntegerField(min_value=0)


class FailureOut(serializers.Serializer):
    success = FalseField()
    message = serializers.CharField()


class ValidationFailureOut(FailureOut):
    # A body that is not JSON at all (a parse error) is a 400 with a message and no `errors`;
    # a 403 carries `errors` only when the reason leaks nothing (AccessDenied).
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


# gunicorn refuses a request line over 4094 bytes (limit_request_line) with its own HTML page,
# before the app sees the request; any operation can get it, e.g. with a very long query string.
REQUEST_LINE_TOO_LONG = OpenApiResponse(
    OpenApiTypes.STR, description="Request line too long: refused by gunicorn, as HTML"
)


def envelope(name: str, results, *, paginated: bool = False, pagination=None):
    fields = {
        "success": TrueField(),
        "message": serializers.CharField(),
        "results": results,
    }
    if paginated:
        fields["pagination"] = PaginationOut()
    elif pagination is not None:
        fields["pagination"] = pagination
    return inline_serializer(name=name, fields=fields)


def responses(ok: dict, *codes: int, body: bool = False) -> dict:
    """`ok` maps success codes to envelopes; `codes` are the failures the endpoint can answer.

    Every operation can also answer 405 (another method on its path), 503 (the database is
    away) and gunicorn's 414; one that takes a body also 413 and 415."""
    out = dict(ok)
    extra = (405, 413, 415) if body else (405,)
    for code in sorted({*codes, *extra, 503}):
        schema = ValidationFailureOut if code in (400, 403) else FailureOut
        example = _EXAMPLE_BODIES.get(
            code, {"success": False, "message": STATUS_MESSAGES.get(code, "Error")}
        )
        out[code] = OpenApiResponse(
            schema,
            description=_MESSAGES[code],
            examples=[OpenApiExample(f"{code}", value=example, status_codes=[str(code)])],
        )
    out[(414, "text/html")] = REQUEST_LINE_TOO_LONG
    return out


class TokenScheme(OpenApiAuthenticationExtension):
    """The API token, listed first in Swagger UI's Authorize dialog (schemes are listed by
    name), with the prefix said where the token is pasted."""

    target_class = "courseprogress.authentication.CachedTokenAuthentication"
    name = "apiToken"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "Paste `Token <key>`: the word Token, a space, then the key (from "
                "POST /auth/token, or printed by `make run`). A bare key is refused with 401."
            ),
        }
