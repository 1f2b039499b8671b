"""House rules for every response under the API paths (/user-progress/, /auth/).

- Errors that never reach a DRF view (unknown paths, bodies Django refuses, crashes before the
  view) come back as the JSON envelope instead of Django's HTML pages.
- Responses are private to the caller and never stored by shared caches or browsers.
"""

from django.conf import settings

from courseprogress.exceptions import json_failure


class ApiMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.prefixes = tuple(settings.API_PATH_PREFIXES)

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(self.prefixes):
            return response
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            response = json_failure(response.status_code)
        response["Cache-Control"] = "private, no-store"
        return response
