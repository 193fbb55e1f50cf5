"""The API's JSON renderer: DRF's `JSONRenderer` output, encoded by orjson.

orjson encodes a 25 KB page of agents in a fraction of the standard library's time (benchmarks/
README.md "Request cost"). What differs from `json.dumps` is handled here so that the bytes are
DRF's: datetimes, dates, times and dataclasses go through DRF's own encoder (`default`), as does
every type orjson does not know (Decimal as a float, lazy translations, querysets, ...); U+2028
and U+2029 are escaped as DRF escapes them; and a response orjson refuses (an integer beyond 64
bits, a key that is not a string, ...) or that may hold a float in the range where orjson writes
it differently (1e-9 to 1e-4: `0.00001` for `1e-05`, `2e-6` for `2e-06`, found by the bytes
those forms contain) is rendered by DRF's renderer. An indented, ASCII-only or non-strict
rendering is DRF's too. The one difference: a NaN or infinite float, which DRF's strict JSON
refuses (an error), is rendered as `null`."""

from __future__ import annotations

import re

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_default = JSONEncoder().default
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# What orjson writes, and json.dumps does not, for a float between 1e-9 and 1e-4: `0.00001` for
# 1e-05 and `2e-6` for 2e-06 (a number ends at `,`, `]`, `}` or the end). Regular expressions with
# a literal prefix: they search 25 KB in a third of the time `bytes in bytes` takes for these.
_SMALL_FLOAT = (re.compile(rb"0\.0000"), re.compile(rb"e-[6-9](?:[],}]|\Z)"))


class StudioJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.ensure_ascii or not self.compact or not self.strict:
            return super().render(data, accepted_media_type, renderer_context)
        if self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            rendered = orjson.dumps(data, default=_default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        if any(form.search(rendered) for form in _SMALL_FLOAT):
            return super().render(data, accepted_media_type, renderer_context)
        if not rendered.isascii():  # perhaps U+2028 or U+2029
            rendered = rendered.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return rendered
