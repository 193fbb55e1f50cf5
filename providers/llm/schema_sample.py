"""Deterministic instances of a JSON schema, derived from an input text.

The mock provider and the fake LLM servers answer structured-output requests with these, so a test
can predict every field of the answer from its input alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SNIPPET_CHARS = 60


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The first `limit` characters of `text` with its whitespace collapsed."""
    collapsed = re.sub(r"\s+", " ", text).strip()
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 3] + "..."


def sample_for_schema(schema: Mapping[str, Any], source_text: str, *, field: str = "value") -> Any:
    """A value that conforms to `schema`; strings name their field and quote `source_text`."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return sample_for_schema(schema[combinator][0], source_text, field=field)
    sampler = _SAMPLERS.get(_type_of(schema), _sample_string)
    return sampler(schema, source_text, field)


def _type_of(schema: Mapping[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((kind for kind in declared if kind != "null"), "null")
    if declared:
        return declared
    return "object" if "properties" in schema else "string"


def _sample_object(schema: Mapping[str, Any], source_text: str, field: str) -> dict[str, Any]:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    names = list(properties) + [name for name in schema.get("required", ()) if name not in properties]
    return {name: sample_for_schema(properties.get(name, {}), source_text, field=name) for name in names}


def _sample_array(schema: Mapping[str, Any], source_text: str, field: str) -> list[Any]:
    count = max(schema.get("minItems", 1), 1)
    if "maxItems" in schema:
        count = min(count, schema["maxItems"])
    items = schema.get("items") or {}
    return [sample_for_schema(items, source_text, field=field) for _ in range(count)]


def _sample_string(schema: Mapping[str, Any], source_text: str, field: str) -> str:
    text = f"{field}: {snippet(source_text)}"
    text = text.ljust(schema.get("minLength", 0), ".")
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def _sample_number(schema: Mapping[str, Any], source_text: str, field: str) -> int | float:
    value = schema.get("minimum", 1)
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    return int(value) if _type_of(schema) == "integer" else float(value)


_SAMPLERS = {
    "object": _sample_object,
    "array": _sample_array,
    "string": _sample_string,
    "integer": _sample_number,
    "number": _sample_number,
    "boolean": lambda schema, source_text, field: True,
    "null": lambda schema, source_text, field: None,
}
