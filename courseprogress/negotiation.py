"""Content negotiation that waits for its turn (raised by courseprogress.apiview.ApiView).

DRF negotiates the response format first thing in `APIView.initial()`, before authentication:
an anonymous `Accept: application/xml` got a 406 and `?format=xml` a 404 where the contract's
order of checks (401 -> 403 -> 404 -> 400 -> 409) says 401. Here a failed negotiation answers in
JSON for now and keeps its error; `ApiView` raises it once the caller is authenticated and
authorised: 406 for an Accept header nothing here can satisfy, 400 naming `format` for a format
that does not exist. Reading the query string can itself fail (over 1000 parameters): that
error waits its turn the same way and becomes a 400 (courseprogress.exceptions).
"""

from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation


class DeferredContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except (Http404, exceptions.NotAcceptable, SuspiciousOperation) as exc:
            request.negotiation_error = exc
            return renderers[0], renderers[0].media_type
