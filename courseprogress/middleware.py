"""JSON errors for requests that never reach a DRF view under the API paths.

Unknown paths (404), oversized bodies rejected by Django (400/413) and crashes outside DRF (500)
would otherwise come back as HTML; under /user-progress/ and /auth/ they become the envelope.
"""

from django.conf import settings

from courseprogress.exceptions import json_failure


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.prefixes = tuple(settings.API_PATH_PREFIXES)

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith(self.prefixes)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return json_failure(response.status_code)
        return response
