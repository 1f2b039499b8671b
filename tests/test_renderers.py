"""The envelope renderer writes, with orjson, exactly the bytes DRF's JSONRenderer writes."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from courseprogress import renderers
from courseprogress.renderers import EnvelopeJSONRenderer, Paginated

UTC = datetime.UTC
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))

PAYLOADS = [
    {"text": 'é ü 中文 "quoted" \\ / <tag> & \n\t\x00\x1f\x7f', "none": None, "flag": False},
    {"line": "a\u2028b\u2029c"},
    {"numbers": [0, -1, 2**62, 0.1, 1.0, 23.0, 54.54, 33.33, 100.0, -0.0, 1e16, 1.5e300]},
    {
        "at": datetime.datetime(2025, 10, 13, 17, 50, 51, 683000, tzinfo=UTC),
        "local": datetime.datetime(2025, 10, 13, 23, 20, 51, tzinfo=IST),
        "naive": datetime.datetime(2025, 10, 13, 17, 50, 51),
        "day": datetime.date(2025, 1, 2),
        "clock": datetime.time(1, 2, 3, 4000),
        "span": datetime.timedelta(days=1, seconds=5),
        "percent": Decimal("12.50"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "lazy": gettext_lazy("Not found"),
        "pair": (1, 2),
        "blob": b"xy",
        3: "integer key",
    },
    [{"nested": [{"deeper": {"x": Decimal("0.10")}}]}],
    "a string",
    7,
    [],
    {},
]


class View:
    success_message = "Done"


def drf(data, status=200):
    context = {"response": Response(status=status), "view": View()}
    return JSONRenderer().render(
        renderers.envelope(data, context["response"], context["view"]), None, context
    )


def ours(data, status=200, accepted=None):
    context = {"response": Response(status=status), "view": View()}
    return EnvelopeJSONRenderer().render(data, accepted, context)


@pytest.mark.skipif(renderers.orjson is None, reason="orjson not installed")
def test_orjson_is_used():
    assert renderers.dumps({"a": 1}) == b'{"a":1}'


@pytest.mark.parametrize("payload", PAYLOADS)
def test_same_bytes_as_drf(payload):
    assert ours(payload) == drf(payload)


def test_paginated_envelope_is_unchanged():
    data = Paginated(results=[{"id": 1}], pagination={"page": 1, "limit": 20})
    assert ours(data) == drf(data)
    assert ours(data).startswith(b'{"success":true,"message":"Done","results":[{"id":1}]')


def test_failures_pass_through_unchanged():
    failure = {"success": False, "message": "Validation failed", "errors": {"x": ["bad"]}}
    assert ours(failure, status=400) == drf(failure, status=400)
    assert ours(failure, status=400).startswith(b'{"success":false')


def test_no_data_is_an_empty_body():
    assert ours(None) == b""


def test_what_orjson_cannot_encode_goes_to_drf():
    huge = {"n": 2**70}
    assert ours(huge) == drf(huge)


def test_indent_asked_for_is_drfs_pretty_print():
    assert ours({"a": 1}, accepted="application/json; indent=4") == JSONRenderer().render(
        {"success": True, "message": "Done", "results": {"a": 1}},
        "application/json; indent=4",
        {},
    )


def test_without_orjson_drf_renders(monkeypatch):
    monkeypatch.setattr(renderers, "orjson", None)
    for payload in PAYLOADS:
        assert ours(payload) == drf(payload)


@pytest.mark.skipif(renderers.orjson is None, reason="orjson not installed")
def test_a_cached_fragment_renders_as_the_data_it_was_made_from():
    data = {"enrollments": None, "activityLogs": [{"progressPercent": "12.50", "x": "\u2028"}]}
    fragment = renderers.json_fragment(renderers.dumps(data))
    assert ours(fragment) == ours(data) == drf(data)
    wrapped = Paginated(results=fragment, pagination={"page": 1})
    assert ours(wrapped) == drf(Paginated(results=data, pagination={"page": 1}))


@pytest.mark.skipif(renderers.orjson is None, reason="orjson not installed")
def test_a_fragment_through_drfs_path_is_the_same_json():
    data = {"a": [1, 2], "b": "é"}
    fragment = renderers.json_fragment(renderers.dumps(data))
    accepted = "application/json; indent=4"
    assert ours(fragment, accepted=accepted) == ours(data, accepted=accepted)
