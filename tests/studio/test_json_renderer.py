"""studio.api.renderers: the API's JSON is byte for byte what DRF's JSONRenderer writes, encoded by
orjson where that gives the same bytes and by DRF's renderer where it would not."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
import zoneinfo

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from studio.api.renderers import StudioJSONRenderer

UTC = dt.UTC
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@dataclasses.dataclass
class Point:
    x: int


VALUES = [
    {"count": 3, "page": 1, "limit": 20, "results": [{"id": "agent-1", "name": "Ünïcode ✓ 漢字"}]},
    dt.datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC),
    dt.datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC),
    dt.datetime(2026, 12, 8, 1, 2, 3, 5, tzinfo=PARIS),
    dt.datetime(2026, 12, 8, 1, 2, 3),
    dt.date(2026, 12, 8),
    dt.time(1, 2, 3, 4),
    dt.timedelta(hours=1, microseconds=5),
    decimal.Decimal("12.3400"),
    decimal.Decimal("0.000001"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    gettext_lazy("Not found."),
    ErrorDetail("The name is taken.", code="conflict"),
    {"error": {"code": "not_found", "message": gettext_lazy("Not found."), "fields": {}}},
    ReturnDict({"a": ReturnList([1, 2], serializer=None)}, serializer=None),
    [0.1, 1.0, -0.0, 1e16, 1e22, 123456789012345678.0, 0.0001, 3.14159, 1e-10, 5e-324],
    [1e-05, 2.5e-06, 1e-07, 9.99e-09, -4e-05],  # orjson writes these otherwise: DRF's renderer
    {"cost_usd": 0.0000125, "note": "0.0000 in a string"},
    [2**63 - 1, -(2**63), 2**64 - 1, 2**64, 10**30, True, False, None],
    "line\u2028separator\u2029paragraph",
    "".join(chr(c) for c in range(0x30)) + '"\\/\x7f\u00e9\ufeff\U0001f600',
    {1: "an int key", None: "a None key"},
    {"set": {3}, "tuple": (1, 2), "bytes": b"raw"},
    {"nested": [[[[{"deep": [dt.date(2026, 1, 1)]}]]]]},
    "",
    [],
    {},
    0,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_bytes_are_drfs(value):
    assert StudioJSONRenderer().render(value) == JSONRenderer().render(value)


@pytest.mark.parametrize("media_type", ["application/json; indent=4", "application/json; indent=0"])
def test_an_indented_rendering_is_drfs(media_type):
    value = {"a": [1, {"b": dt.datetime(2026, 1, 1, tzinfo=UTC)}]}
    assert StudioJSONRenderer().render(value, media_type) == JSONRenderer().render(value, media_type)


@pytest.mark.parametrize(
    "value",
    [Point(1), object(), range(3), dt.time(1, tzinfo=UTC), "\ud800", {(1, 2): "a tuple key"}],
    ids=["point", "object", "range", "aware-time", "lone-surrogate", "tuple-key"],  # stable for xdist
)
def test_what_drf_cannot_render_it_cannot_either(value):
    with pytest.raises(Exception) as drf:  # noqa: PT011 - whatever DRF's renderer raises
        JSONRenderer().render(value)
    with pytest.raises(drf.type):
        StudioJSONRenderer().render(value)


def test_nothing_is_no_bytes():
    assert StudioJSONRenderer().render(None) == b""


def test_a_nan_is_null_where_drf_refuses_it():
    with pytest.raises(ValueError, match="not JSON compliant"):
        JSONRenderer().render([float("nan")])
    assert StudioJSONRenderer().render([float("nan"), float("inf")]) == b"[null,null]"


def test_the_api_renders_with_it():
    from rest_framework.settings import api_settings

    (renderer,) = api_settings.DEFAULT_RENDERER_CLASSES
    assert renderer is StudioJSONRenderer
