"""OpenAPI descriptions of the envelope, so that generated clients see the real bodies."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

_MESSAGES = {
    400: "Validation failed: `errors` names each field",
    401: "No or bad credentials",
    403: "Access denied",
    404: "Not found",
    409: "Not allowed in the current state",
    410: "The cursor is older than the events kept: start again without `after`",
    413: "Request body too large",
    429: "Too many requests: see Retry-After",
    503: "The database is unreachable for a moment: retry after Retry-After seconds",
}


class PaginationOut(serializers.Serializer):
    page = serializers.IntegerField(min_value=1)
    limit = serializers.IntegerField(min_value=1)
    totalItems = serializers.IntegerField(min_value=0)
    totalPages = serializers.IntegerField(min_value=0)


class FailureOut(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField()


class ValidationFailureOut(FailureOut):
    # A body that is not JSON at all (a parse error) is a 400 with a message and no `errors`.
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
        "success": serializers.BooleanField(),
        "message": serializers.CharField(),
        "results": results,
    }
    if paginated:
        fields["pagination"] = PaginationOut()
    elif pagination is not None:
        fields["pagination"] = pagination
    return inline_serializer(name=name, fields=fields)


def responses(ok: dict, *codes: int) -> dict:
    """`ok` maps success codes to envelopes; `codes` are the failures the endpoint can answer."""
    out = dict(ok)
    for code in codes:
        body = ValidationFailureOut if code == 400 else FailureOut
        out[code] = OpenApiResponse(body, description=_MESSAGES[code])
    out[503] = OpenApiResponse(FailureOut, description=_MESSAGES[503])
    out[(414, "text/html")] = REQUEST_LINE_TOO_LONG
    return out
