"""Handoff: the agents are tiers, tried in order until one handles the input.

A tier escalates to the next when its structured `escalate_field` (default `escalate`) is true or,
when `confidence_field` and `min_confidence` are set, when its confidence is missing or below
`min_confidence`. The last tier's answer stands even if it would escalate (then `handled` is false).
A tier that fails fails the run, whatever `on_agent_error` says.

Output: {"tier": n (1-based), "agent": name, "handled": bool, "output": that tier's output,
         "escalations": [{"tier", "agent", "reason": "escalate" | "low_confidence"}]}
Events: pattern.step {"step": "escalate", "tier", "agent", "reason"} per escalation, then
        {"step": "handled", "tier", "agent", "handled"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.runtime.validation import Errors, Key, error, number
from orchestrations.patterns.base import Output, Pattern, PatternRun, inputs_from
from orchestrations.patterns.options import FIELD_NAME_OPTION


async def execute(run: PatternRun) -> Output:
    escalations: list[dict[str, Any]] = []
    for position in range(len(run.agents)):
        tier = {"tier": position + 1, "agent": run.names[position]}
        output = await _ask_tier(run, position)
        reason = _escalation_reason(output, run.config)
        if reason is None or position == len(run.agents) - 1:
            break
        escalations.append({**tier, "reason": reason})
        await run.emit_step("escalate", **tier, reason=reason)
    await run.emit_step("handled", **tier, handled=reason is None)
    return {**tier, "handled": reason is None, "output": output, "escalations": escalations}


async def _ask_tier(run: PatternRun, position: int) -> Output:
    config = run.config
    fields = [
        {
            "name": config["escalate_field"],
            "type": "bool",
            "description": "true if you cannot handle this input and it must go to the next tier",
        }
    ]
    if config["confidence_field"]:
        fields.append(
            {
                "name": config["confidence_field"],
                "type": "float",
                "description": "How confident you are in your answer, from 0 to 1.",
            }
        )
    instructions = (
        f"You are tier {position + 1} of {len(run.agents)} in a hand-off chain. Answer the input if you "
        f"can; if you cannot handle it, set `{config['escalate_field']}` to true."
    )
    async with run.step("tier", tier=position + 1) as step:
        return await run.call(
            step,
            position,
            inputs_from(run.agents[position], run.inputs),
            instructions=instructions,
            extra_outputs=fields,
            essential=True,
        )


def _escalation_reason(output: Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
    if output.get(config["escalate_field"]) is True:
        return "escalate"
    if config["confidence_field"]:
        confidence = output.get(config["confidence_field"])
        numeric = isinstance(confidence, int | float) and not isinstance(confidence, bool)
        if not numeric or confidence < config["min_confidence"]:
            return "low_confidence"
    return None


def _check(config: Mapping[str, Any], agent_count: int) -> Errors:
    if (config["confidence_field"] is None) == (config["min_confidence"] is None):
        return []
    missing = "min_confidence" if config["min_confidence"] is None else "confidence_field"
    return [error(missing, "confidence_field and min_confidence go together: set both or neither")]


PATTERN = Pattern(
    id="handoff",
    name="Handoff",
    description="Tiers in order: each answers or escalates to the next when it cannot handle the input.",
    min_agents=2,
    max_agents=5,
    roles=("tier", "..."),
    execute=execute,
    options={
        "escalate_field": Key(FIELD_NAME_OPTION, "escalate"),
        "confidence_field": Key(FIELD_NAME_OPTION, None),
        "min_confidence": Key(number(0, 1), None),
    },
    check=_check,
)
