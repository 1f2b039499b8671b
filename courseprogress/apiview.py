"""The base class of every API view: checks in the contract's order, a truthful OPTIONS."""

from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import APIView


class ApiView(APIView):
    """APIView with the negotiation's error raised after the permission checks, and an OPTIONS
    answer that says what it is (not the endpoint's success message)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        error = getattr(request, "negotiation_error", None)
        if isinstance(error, Http404):
            formats = ", ".join(renderer.format for renderer in self.get_renderers())
            raise exceptions.ValidationError({"format": [f"Use one of: {formats}."]})
        if error is not None:
            raise error

    def options(self, request, *args, **kwargs):
        self.success_message = "Allowed methods and formats retrieved successfully"
        return super().options(request, *args, **kwargs)
