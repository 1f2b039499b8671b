"""The success envelope: {"success": true, "message": ..., "results": ...[, "pagination": ...]}."""

from rest_framework.renderers import JSONRenderer


class Paginated(dict):
    """What the paginator hands the renderer: {"results": [...], "pagination": {...}}."""


def envelope(data, response, view) -> dict:
    if response is not None and response.status_code >= 400:
        return data  # the exception handler already built the failure envelope
    message = getattr(view, "success_message", None) or "Request completed successfully"
    if isinstance(data, Paginated):
        return {"success": True, "message": message, **data}
    return {"success": True, "message": message, "results": data}


class EnvelopeJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        context = renderer_context or {}
        if data is not None:
            data = envelope(data, context.get("response"), context.get("view"))
        return super().render(data, accepted_media_type, renderer_context)
