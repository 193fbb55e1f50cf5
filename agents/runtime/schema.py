"""Signature fields: their types, their JSON Schema, and how one value is checked against one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

FIELD_TYPES = ("string", "int", "float", "bool", "enum", "array", "object")
# The chain_of_thought strategy asks for this hidden output first, so no signature output may use it.
REASONING_FIELD_NAME = "reasoning"

_JSON_TYPES = {
    "string": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "enum": "string",
    "array": "array",
    "object": "object",
}


def field_json_schema(field: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema of one signature field."""
    schema: dict[str, Any] = {"type": _JSON_TYPES[field["type"]]}
    if field["type"] == "enum":
        schema["enum"] = list(field["enum_values"])
    if field.get("items"):  # only a pattern's own array output describes its items (a plan's subtasks)
        schema["items"] = dict(field["items"])
    if field.get("description"):
        schema["description"] = field["description"]
    return schema


def signature_json_schema(fields: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """JSON Schema of an object with one property per field (inputs: tool parameters, deployment
    and MCP input schemas; outputs: structured output). A field is required unless `required` is false."""
    return {
        "type": "object",
        "properties": {field["name"]: field_json_schema(field) for field in fields},
        "required": [field["name"] for field in fields if field.get("required", True)],
        "additionalProperties": False,
    }


def conform(field: Mapping[str, Any], value: Any) -> Any:
    """Returns `value` as the field's type, or raises ValueError saying what is wrong.

    JSON does not tell 3 from 3.0, so an integral float passes as an int and an int as a float."""
    kind = field["type"]
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and _is_number(value) and float(value).is_integer():
        return int(value)
    if kind == "float" and _is_number(value):
        return float(value)
    if kind == "array" and isinstance(value, list | tuple):
        return list(value)
    if kind == "object" and isinstance(value, Mapping):
        return dict(value)
    if kind == "enum" and isinstance(value, str) and value in field["enum_values"]:
        return value
    if kind == "enum":
        options = ", ".join(repr(option) for option in field["enum_values"])
        raise ValueError(f"expected one of {options}, got {value!r}")
    raise ValueError(f"expected {_EXPECTED[kind]}, got {json_kind(value)}")


_EXPECTED = {
    "string": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "array": "an array",
    "object": "an object",
}


def json_kind(value: Any) -> str:
    """How a value reads in an error message, in JSON words ("a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
