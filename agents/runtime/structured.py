"""Asking the model for a JSON object of given fields, and repairing a bad answer once."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.runtime.execution import Execution
from agents.runtime.outputs import InvalidOutput, parse_output
from agents.runtime.prompt import repair_request
from agents.runtime.schema import signature_json_schema
from agents.runtime.types import AgentError
from providers.llm.types import Completion, Message

Fields = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """What a strategy produced: the output fields and attributes for the result and the agent span."""

    output: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)


async def ask_for_fields(
    execution: Execution, messages: Sequence[Message], fields: Fields, *, schema_name: str = "output"
) -> dict[str, Any]:
    """Asks for a JSON object of `fields` (native structured output) and parses it, repairing once."""
    schema = signature_json_schema(fields)
    completion = await execution.complete(messages, json_schema=schema, schema_name=schema_name)
    return await accept_or_repair(execution, messages, completion, fields, schema_name=schema_name)


async def accept_or_repair(
    execution: Execution,
    messages: Sequence[Message],
    completion: Completion,
    fields: Fields,
    *,
    schema_name: str = "output",
) -> dict[str, Any]:
    """Parses `completion` as `fields`; if it does not match, asks once more with the problem appended
    to the conversation, then raises AgentError("invalid_output", status=502)."""
    try:
        return parse_output(completion, fields)
    except InvalidOutput as problem:
        retry = [*messages, Message("assistant", _answer_text(completion)), repair_request(problem.message)]
    schema = signature_json_schema(fields)
    repaired = await execution.complete(retry, json_schema=schema, schema_name=schema_name)
    try:
        return parse_output(repaired, fields)
    except InvalidOutput as problem:
        message = f"the model's answer did not match the output fields after one repair: {problem.message}"
        raise AgentError("invalid_output", message, status=502, fields=problem.fields) from None


def _answer_text(completion: Completion) -> str:
    if completion.text or completion.parsed is None:
        return completion.text
    return json.dumps(completion.parsed, ensure_ascii=False)
