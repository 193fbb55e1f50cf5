"""Parallel: every agent works on the same input, all at once.

Output: {"outputs": {agent name: output}}, names made unique by position ("Writer", "Writer (2)").
Events: pattern.step {"step": "fan_out", "agents": [names]} before the agents start.
"""

from __future__ import annotations

from agents.runtime.validation import Key, integer
from orchestrations.patterns.base import Output, Pattern, PatternRun, inputs_from


async def execute(run: PatternRun) -> Output:
    positions = range(len(run.agents))
    await run.emit_step("fan_out", agents=list(run.names))
    async with run.step("fan_out") as step:
        outputs = await run.call_all(
            (run.call(step, p, inputs_from(run.agents[p], run.inputs)) for p in positions),
            limit=run.config["max_concurrency"],
        )
    return {"outputs": run.by_name(positions, outputs)}


PATTERN = Pattern(
    id="parallel",
    name="Parallel",
    description="Every agent works on the same input at once; their outputs are returned side by side.",
    min_agents=2,
    max_agents=20,
    roles=("agent", "..."),
    execute=execute,
    options={"max_concurrency": Key(integer(1, 100), None)},
)
