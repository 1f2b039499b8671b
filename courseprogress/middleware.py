"""House rules for every response under the API paths (/user-progress/, /auth/).

- Errors that never reach a DRF view (unknown paths, bodies Django refuses, crashes before the
  view) come back as the JSON envelope instead of Django's HTML pages.
- Responses are private to the caller and never stored by shared caches or browsers.

And for every response of a DRF view, wherever it is: the reference cycles DRF leaves behind
are broken once the response is rendered. DRF's Response keeps its renderer context, which
holds the view, the request and the response itself, and the view keeps the response; so
every response, body included, used to wait for Python's cyclic garbage collector instead of
being freed when sent. With 840 KB course pages and 16 threads that left workers at 200-360 MB
after a run of them (bench/RESULTS.md).
"""

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.utils.functional import SimpleLazyObject, empty

from courseprogress.exceptions import json_failure


class HealthCheckMiddleware:
    """/healthz answers before any other middleware looks at the request: a load balancer or
    Docker's HEALTHCHECK probes by address (Host: 127.0.0.1:8000, 10.0.0.5), which
    ALLOWED_HOSTS rightly refuses for the site once it names the real domain, and over plain
    HTTP, which SECURE_SSL_REDIRECT would redirect. The answer names no host and sets nothing.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == "/healthz":
            from courseprogress.views import healthz

            return healthz(request)
        return self.get_response(request)


class ApiMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.prefixes = tuple(settings.API_PATH_PREFIXES)

    def __call__(self, request):
        response = self.get_response(request)
        release_drf_cycles(response)
        if not request.path.startswith(self.prefixes):
            return response
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            response = json_failure(response.status_code)
        response["Cache-Control"] = "private, no-store"
        return response


def release_drf_cycles(response) -> None:
    """Drop the rendered response's links back to its view (see the module's docstring)."""
    context = getattr(response, "renderer_context", None)
    if not context or not getattr(response, "is_rendered", False):
        return
    view = context.get("view")
    if getattr(view, "response", None) is response:
        view.response = None
    response.renderer_context = None


class LazyMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, with the message storage built on first use.

    Django builds the storage (a cookie storage, a session storage and a cookie signer) for
    every request, and writes it back after; only the admin and the dashboard ever add or read
    a message, never an API request. Here `request._messages` is a lazy object: a request that
    never touches it builds nothing and writes nothing back; one that does behaves exactly as
    under Django's class (same storage, same cookie). bench/notes.md (issue 17, "The
    framework's cost of every request") has the figures."""

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response  # never used: nothing to store
        return super().process_response(request, response)
