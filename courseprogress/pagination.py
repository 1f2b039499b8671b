"""The contract's page/limit pagination.

DRF's PageNumberPagination ignores a bad page size and 404s past the last page; here a bad
`page` or `limit` is a 400, a limit above the maximum is lowered (and reported), and a page past
the end is an empty 200 with true totals.
"""

import math

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from courseprogress.renderers import Paginated


def positive_int(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only (contract section 1): int() also takes "1_0", " 1" and other digits.
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
        raise ValidationError({name: ["A whole number of 1 or more is required."]})
    try:
        value = int(raw)
    except ValueError:  # more digits than Python converts (4300)
        raise ValidationError({name: ["A whole number of 1 or more is required."]}) from None
    if value < 1:
        raise ValidationError({name: ["A whole number of 1 or more is required."]})
    return value


class PageLimitPagination(BasePagination):
    default_limit = 20
    max_limit = 100

    def __init__(self, default_limit: int | None = None, max_limit: int | None = None):
        if default_limit is not None:
            self.default_limit = default_limit
        if max_limit is not None:
            self.max_limit = max_limit

    def parse(self, params) -> tuple[int, int]:
        """(page, limit) from query parameters; raises ValidationError on bad values."""
        page = positive_int(params, "page", 1)
        limit = min(positive_int(params, "limit", self.default_limit), self.max_limit)
        return page, limit

    def paginate(self, queryset, params) -> tuple[list, dict]:
        """One COUNT and one slice, whatever the page."""
        page, limit = self.parse(params)
        total = queryset.count()
        offset = (page - 1) * limit
        rows = list(queryset[offset : offset + limit]) if offset < total else []
        return rows, self.pagination(page, limit, total)

    @staticmethod
    def pagination(page: int, limit: int, total: int) -> dict:
        return {
            "page": page,
            "limit": limit,
            "totalItems": total,
            "totalPages": math.ceil(total / limit) if total else 0,
        }

    def paginate_queryset(self, queryset, request, view=None):
        self._rows, self._pagination = self.paginate(queryset, request.query_params)
        return self._rows

    def get_paginated_response(self, data):
        return Response(Paginated(results=data, pagination=self._pagination))

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "message", "results", "pagination"],
            "properties": {
                "success": {"type": "boolean"},
                "message": {"type": "string"},
                "results": schema,
                "pagination": PAGINATION_SCHEMA,
            },
        }


PAGINATION_SCHEMA = {
    "type": "object",
    "required": ["page", "limit", "totalItems", "totalPages"],
    "properties": {
        "page": {"type": "integer", "minimum": 1},
        "limit": {"type": "integer", "minimum": 1},
        "totalItems": {"type": "integer", "minimum": 0},
        "totalPages": {"type": "integer", "minimum": 0},
    },
}
