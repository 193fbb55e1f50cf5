"""Checking an execution's inputs against the signature's input fields, before any model call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.runtime.schema import conform
from agents.runtime.types import AgentError


def validate_inputs(
    fields: Sequence[Mapping[str, Any]], inputs: Any, *, allow_unknown: bool = False
) -> dict[str, Any]:
    """Returns the inputs conformed to their field types; raises AgentError("invalid_input", status=400)
    whose `fields` name every missing, mistyped or (unless `allow_unknown`, when they are passed
    through) unknown input. A null optional input is left out."""
    if not isinstance(inputs, Mapping):
        raise AgentError("invalid_input", "the input must be a JSON object", status=400)
    known = {field["name"] for field in fields}
    unknown = f"unknown input; the inputs are: {', '.join(sorted(known)) or 'none'}"
    problems = {} if allow_unknown else {name: unknown for name in inputs if name not in known}
    conformed: dict[str, Any] = {name: value for name, value in inputs.items() if name not in known}
    for field in fields:
        value = inputs.get(field["name"])
        if value is None:
            if field.get("required", True):
                problems[field["name"]] = "this input is required"
            continue
        try:
            conformed[field["name"]] = conform(field, value)
        except ValueError as exc:
            problems[field["name"]] = str(exc)
    if problems:
        summary = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        message = f"the input does not match the signature ({summary})"
        raise AgentError("invalid_input", message, status=400, fields=problems)
    return conformed
