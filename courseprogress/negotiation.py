"""Content negotiation that waits for its turn (raised by courseprogress.apiview.ApiView).

DRF negotiates the response format first thing in `APIView.initial()`, before authentication:
an anonymous `Accept: application/xml` got a 406 and `?format=xml` a 404 where the contract's
order of checks (401 -> 403 -> 404 -> 400 -> 409) says 401. Here a failed negotiation answers in
JSON for now and keeps its error; `ApiView` raises it once the caller is authenticated and
authorised: 406 for an Accept header nothing here can satisfy, 400 naming `format` for a format
that does not exist. Reading the query string can itself fail (over 1000 parameters): that
error waits its turn the same way and becomes a 400 (courseprogress.exceptions).

Almost every API request asks for what the first renderer writes: `Accept: application/json`,
`*/*` or no Accept header, and no `format` parameter. For those the answer is known without
parsing the header or the query string (DRF's own loop returns the first renderer and its media
type for them); every other request goes through DRF's negotiation unchanged. That shortcut
saves ~10 % of the CPU of the framework's floor (bench/notes.md, issue 17).
"""

from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation

# Accept values for which DRF picks the first renderer, when that renderer writes JSON.
PLAIN_JSON_ACCEPTS = frozenset({None, "*/*", "application/json"})


def _asks_for_first_renderer(request, renderers, format_suffix) -> bool:
    """True when DRF's negotiation would return (renderers[0], its media type) for certain."""
    if format_suffix or not renderers or renderers[0].media_type != "application/json":
        return False
    meta = request.META
    if meta.get("HTTP_ACCEPT") not in PLAIN_JSON_ACCEPTS:
        return False
    query = meta.get("QUERY_STRING", "")
    # No `format` parameter, also not percent-encoded; and few enough parameters that parsing
    # them later cannot fail (that error must surface here, see the module's docstring).
    return not query or ("format" not in query and "%" not in query and query.count("&") < 100)


class DeferredContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if _asks_for_first_renderer(request, renderers, format_suffix):
            return renderers[0], renderers[0].media_type
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except (Http404, exceptions.NotAcceptable, SuspiciousOperation) as exc:
            request.negotiation_error = exc
            return renderers[0], renderers[0].media_type
