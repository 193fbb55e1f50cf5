"""Reading JSON that a model wrote: structured answers and tool-call arguments."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_json(text: str) -> Any | None:
    """The JSON document in `text` (a surrounding ``` fence allowed), or None when it does not parse."""
    fenced = _FENCE.match(text)
    try:
        return json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return None


def decode_arguments(text: str | None) -> dict[str, Any]:
    """Tool-call arguments as an object; malformed arguments become {} and fail the tool's own checks."""
    value = parse_json(text or "")
    return value if isinstance(value, dict) else {}
