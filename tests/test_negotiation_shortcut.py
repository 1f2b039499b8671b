"""The negotiation's shortcut (courseprogress/negotiation.py) answers exactly as DRF's own
negotiation would, for every Accept header and query string it takes, and leaves the rest to it."""

import itertools

import pytest
from django.test import RequestFactory
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request

from courseprogress.negotiation import DeferredContentNegotiation, _asks_for_first_renderer
from courseprogress.renderers import EnvelopeJSONRenderer

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/json, */*",
    "text/html",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "application/xml",
    "",
]
QUERIES = ["", "page=2&limit=5", "format=json", "format=api", "format=xml", "%66ormat=api", "a=1"]
RENDERER_LISTS = [
    [EnvelopeJSONRenderer(), BrowsableAPIRenderer()],
    [BrowsableAPIRenderer(), EnvelopeJSONRenderer()],
    [JSONRenderer()],
]


def drf_request(accept, query):
    extra = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(RequestFactory().get("/x" + (f"?{query}" if query else ""), **extra))


def outcome(negotiation, request, renderers):
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except Exception as exc:  # DRF's errors: compare their kinds
        return type(exc).__name__
    error = getattr(request, "negotiation_error", None)
    return (type(renderer), media_type, type(error).__name__ if error else None)


@pytest.mark.parametrize(
    ("accept", "query", "renderers"), list(itertools.product(ACCEPTS, QUERIES, RENDERER_LISTS))
)
def test_the_shortcut_answers_as_drf_does(accept, query, renderers):
    ours = outcome(DeferredContentNegotiation(), drf_request(accept, query), renderers)
    theirs = outcome(DefaultContentNegotiation(), drf_request(accept, query), renderers)
    if isinstance(theirs, str):  # DRF raises; ours keeps the error for later and answers JSON
        assert ours[2] == theirs
    else:
        assert ours == theirs


@pytest.mark.parametrize(
    ("accept", "query", "taken"),
    [
        (None, "", True),
        ("*/*", "page=2", True),
        ("application/json", "", True),
        ("application/json; indent=4", "", False),
        ("text/html", "", False),
        ("application/json", "format=api", False),
        ("application/json", "%66ormat=api", False),
        ("application/json", "&".join(["a=1"] * 1001), False),
    ],
)
def test_the_shortcut_takes_only_plain_json_requests(accept, query, taken):
    renderers = [EnvelopeJSONRenderer(), BrowsableAPIRenderer()]
    assert _asks_for_first_renderer(drf_request(accept, query), renderers, None) is taken
    assert _asks_for_first_renderer(drf_request(accept, query), renderers, "json") is False
