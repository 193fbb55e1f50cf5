"""Sequential: the agents work in order, each on the previous agent's output.

The first agent gets the orchestration input. By default an agent's inputs come from the previous
output by matching field names, else that output (as text, or JSON) goes into its first input.
`mapping` makes this explicit: a list aligned with the agents, each entry null (the default rule)
or `{target_input: source}`, where source is a field of the previous output or `input.<name>` a
field of the orchestration input. An explicit entry gives the agent exactly the inputs it names:

    mapping: [null, {draft: text, audience: input.audience}]

With on_agent_error=continue a failed agent is skipped: the next one gets the last output there was.

Output: {"output": the last agent's output, "steps": [{"agent": name, "output": ...}, ...]}
Events: pattern.step {"step": "step", "position": n, "agent": name} as each agent starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from agents.runtime.types import AgentSpec
from agents.runtime.validation import Errors, Key, error, fail, list_of, pattern
from orchestrations.patterns.base import (
    OrchestrationError,
    Output,
    Pattern,
    PatternRun,
    input_fields,
    inputs_from,
)
from orchestrations.patterns.options import FIELD_NAME

INPUT_PREFIX = "input."
MAX_AGENTS = 10


async def execute(run: PatternRun) -> Output:
    mapping = run.config["mapping"] or []
    previous: Mapping[str, Any] = run.inputs
    steps = []
    for position, spec in enumerate(run.agents):
        explicit = mapping[position] if position < len(mapping) else None
        inputs = _mapped_inputs(explicit, previous, run.inputs) if explicit else inputs_from(spec, previous)
        await run.emit_step("step", position=position + 1, agent=run.names[position])
        async with run.step("step", position=position + 1) as step:
            output = await run.call(step, position, inputs)
        if output is not None:
            steps.append({"agent": run.names[position], "output": output})
            previous = output
    if not steps:
        raise OrchestrationError("all_agents_failed", "Every agent of the sequence failed.", status=502)
    return {"output": steps[-1]["output"], "steps": steps}


def _mapped_inputs(
    mapping: Mapping[str, str], previous: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    return {target: _source_value(source, previous, inputs) for target, source in mapping.items()}


def _source_value(source: str, previous: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    if source.startswith(INPUT_PREFIX):
        scope, name, where = inputs, source.removeprefix(INPUT_PREFIX), "the orchestration input"
    else:
        scope, name, where = previous, source, "the previous output"
    if name not in scope:
        message = f"The mapping source {source!r} is not a field of {where}."
        raise OrchestrationError("invalid_mapping", message, status=400, fields={"mapping": source})
    return scope[name]


# A mapping source: a field of the previous output, or input.<field> of the orchestration input.
_SOURCE = pattern(
    re.compile(rf"({re.escape(INPUT_PREFIX)})?{FIELD_NAME.pattern}"), "an output field name or input.<field>"
)


def _mapping_entry(entry: Any, path: str, errors: Errors) -> dict[str, str] | None:
    """An entry of the `mapping` option: null or `{target_input: source}`."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping) or not entry:
        return fail(errors, path, "must be null or a non-empty mapping of target input to source")
    for target, source in entry.items():
        if not (isinstance(target, str) and FIELD_NAME.fullmatch(target)):
            fail(errors, f"{path}.{target}", "the target must be an input field name")
        _SOURCE(source, f"{path}.{target}", errors)
    return dict(entry)


def _caller_inputs(agents: Sequence[AgentSpec], config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The first agent's inputs, unless the mapping fills them; and each orchestration input a
    mapping reads (the first agent's sources all read the input), typed as the input it fills."""
    mapping = config["mapping"] or []
    fields = {} if mapping and mapping[0] else {f["name"]: f for f in input_fields(agents[0])}
    for position, entry in enumerate(mapping):
        targets = {f["name"]: f for f in input_fields(agents[position])}
        for target, source in (entry or {}).items():
            if target in targets and (position == 0 or source.startswith(INPUT_PREFIX)):
                name = source.removeprefix(INPUT_PREFIX)
                fields.setdefault(name, {**targets[target], "name": name, "required": True})
    return list(fields.values())


def _check(config: Mapping[str, Any], agent_count: int) -> Errors:
    mapping = config["mapping"] or []
    if len(mapping) > agent_count:
        return [error("mapping", f"has {len(mapping)} entries, more than the {agent_count} agents")]
    return []


PATTERN = Pattern(
    id="sequential",
    name="Sequential",
    description="The agents work in order, each on the previous agent's output.",
    min_agents=2,
    max_agents=MAX_AGENTS,
    roles=("step", "..."),
    execute=execute,
    options={"mapping": Key(list_of(_mapping_entry, max_items=MAX_AGENTS), None)},
    check=_check,
    caller_inputs=_caller_inputs,
)
