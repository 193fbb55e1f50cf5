"""Reading a model's answer as the requested output fields."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agents.runtime.schema import conform, json_kind
from providers.llm.types import Completion

_FENCED_BLOCK = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_NOT_JSON = object()


class InvalidOutput(Exception):
    """An answer that does not match the output fields; `fields` maps a field to its problem."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


def parse_output(completion: Completion, fields: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The answer's value of each field, conformed to its type; keys that were not asked for are dropped.

    Prefers the provider's decoded `parsed`, else decodes the text (a fenced ```json block is tolerated)."""
    answer = (
        completion.parsed if isinstance(completion.parsed, Mapping) else decode_json_object(completion.text)
    )
    output: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in fields:
        name = field["name"]
        if name not in answer:
            problems[name] = "missing"
            continue
        try:
            output[name] = conform(field, answer[name])
        except ValueError as exc:
            problems[name] = str(exc)
    if problems:
        summary = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        raise InvalidOutput(f"the JSON object does not match the output fields ({summary})", problems)
    return output


def decode_json_object(text: str) -> dict[str, Any]:
    """The JSON object the text is, or the first fenced block holding one; raises InvalidOutput."""
    decoded = [_loads(candidate) for candidate in (text, *_FENCED_BLOCK.findall(text))]
    for value in decoded:
        if isinstance(value, dict):
            return value
    if decoded[0] is not _NOT_JSON:
        raise InvalidOutput(f"the answer is {json_kind(decoded[0])}, not a JSON object")
    raise InvalidOutput("the answer is not valid JSON")


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON
