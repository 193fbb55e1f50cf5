"""How an agent reaches its answer (`config.strategy`): each strategy takes the execution and the
validated inputs and returns an Outcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agents.runtime.execution import Execution
from agents.runtime.prompt import (
    REASONING_FIELD,
    answer_message,
    critique_request,
    opening_messages,
    output_fields,
    revise_request,
)
from agents.runtime.react import react
from agents.runtime.structured import Outcome, ask_for_fields

CRITIQUE_FIELDS = (
    {"name": "ok", "type": "bool", "description": "true when the answer needs no change"},
    {"name": "critique", "type": "string", "description": "what to fix; empty when ok"},
)


async def single_shot(execution: Execution, inputs: Mapping[str, Any]) -> Outcome:
    """One structured call."""
    fields = output_fields(execution.spec)
    return Outcome(await ask_for_fields(execution, opening_messages(execution.spec, fields, inputs), fields))


async def chain_of_thought(execution: Execution, inputs: Mapping[str, Any]) -> Outcome:
    """One structured call whose schema puts a hidden `reasoning` field first; the reasoning is
    returned as an attribute, not as output."""
    fields = [REASONING_FIELD, *output_fields(execution.spec)]
    answer = await ask_for_fields(execution, opening_messages(execution.spec, fields, inputs), fields)
    reasoning = answer.pop(REASONING_FIELD["name"])
    return Outcome(answer, {"reasoning": reasoning})


async def self_reflection(execution: Execution, inputs: Mapping[str, Any]) -> Outcome:
    """A draft, then up to `max_cycles` rounds of critique and revision, stopping when the critique is ok."""
    spec = execution.spec
    fields = output_fields(spec)
    messages = opening_messages(spec, fields, inputs)
    draft = await ask_for_fields(execution, messages, fields)
    critiques: list[str] = []
    for _ in range(spec.settings.max_cycles):
        messages += [answer_message(draft), critique_request()]
        review = await ask_for_fields(execution, messages, CRITIQUE_FIELDS, schema_name="critique")
        if review["ok"]:
            break
        critiques.append(review["critique"])
        messages += [answer_message(review), revise_request()]
        draft = await ask_for_fields(execution, messages, fields)
    return Outcome(draft, {"critiques": critiques})


Strategy = Callable[[Execution, Mapping[str, Any]], Awaitable[Outcome]]

STRATEGIES: dict[str, Strategy] = {
    "single_shot": single_shot,
    "chain_of_thought": chain_of_thought,
    "self_reflection": self_reflection,
    "react": react,
}
