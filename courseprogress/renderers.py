"""The success envelope: {"success": true, "message": ..., "results": ...[, "pagination": ...]}.

Bodies are written by orjson when it is installed: the cached reads spend most of their time
turning rows into JSON (bench/RESULTS.md), and orjson does it several times faster than the
standard library. The bytes are DRF's JSONRenderer's: compact separators, UTF-8 without
escapes, U+2028/U+2029 escaped, datetimes, dates, times, Decimals and lazy strings through
DRF's own encoder. Anything orjson refuses (an integer beyond 64 bits, a non-JSON type, an
`indent` asked for in the Accept header) goes to DRF's renderer unchanged. One difference
remains by design: orjson writes NaN and Infinity as null where DRF's strict mode raises; the
API never produces them (inputs are validated and the database checks its bounds).

A body part rendered once with dumps() can be cached as bytes and handed back wrapped in
json_fragment(): the renderer then copies it into the envelope instead of serialising it again.
"""

import json

from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is in requirements.txt
    orjson = None


class JSONFragment:
    """JSON bytes made by dumps(), spliced into a response as they are (see json_fragment).

    A wrapper, not a bytes subclass, so that a large cached body is never copied on its way
    into the response."""

    __slots__ = ("body",)

    def __init__(self, body: bytes):
        self.body = body


if orjson is not None:
    ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
    _drf_default = JSONEncoder().default  # DRF's conversions for what orjson passes through

    def _default(obj):
        if isinstance(obj, JSONFragment):
            return orjson.Fragment(obj.body)
        return _drf_default(obj)


class EnvelopeJSONEncoder(JSONEncoder):
    """DRF's encoder, plus the fragments of json_fragment() (for DRF's own renderer path)."""

    def default(self, obj):
        if isinstance(obj, JSONFragment):
            return json.loads(obj.body)
        return super().default(obj)


LINE_SEPARATOR = "\u2028".encode()
PARAGRAPH_SEPARATOR = "\u2029".encode()


class Paginated(dict):
    """What the paginator hands the renderer: {"results": [...], "pagination": {...}}."""


def envelope(data, response, view) -> dict:
    if response is not None and response.status_code >= 400:
        return data  # the exception handler already built the failure envelope
    message = getattr(view, "success_message", None) or "Request completed successfully"
    if isinstance(data, Paginated):
        return {"success": True, "message": message, **data}
    return {"success": True, "message": message, "results": data}


def dumps(data) -> bytes | None:
    """`data` as JSON bytes exactly as DRF's JSONRenderer writes them, or None when orjson is
    missing or cannot encode it (the caller then uses DRF's renderer)."""
    if orjson is None:
        return None
    try:
        body = orjson.dumps(data, default=_default, option=ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError, ValueError):
        return None
    # DRF escapes these two for JavaScript's sake (they end a line in a JS string literal).
    if LINE_SEPARATOR in body or PARAGRAPH_SEPARATOR in body:
        body = body.replace(LINE_SEPARATOR, b"\\u2028").replace(PARAGRAPH_SEPARATOR, b"\\u2029")
    return body


def json_fragment(body: bytes) -> JSONFragment:
    """JSON bytes made by dumps(), to be spliced into a response as they are."""
    return JSONFragment(body)


class EnvelopeJSONRenderer(JSONRenderer):
    encoder_class = EnvelopeJSONEncoder

    def render(self, data, accepted_media_type=None, renderer_context=None):
        context = renderer_context or {}
        if data is None:
            return b""
        data = envelope(data, context.get("response"), context.get("view"))
        if not self.get_indent(accepted_media_type, context):
            body = dumps(data)
            if body is not None:
                return body
        return super().render(data, accepted_media_type, renderer_context)
