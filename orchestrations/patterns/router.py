"""Router: the first agent (the router) picks exactly one specialist, which answers the input.

The router sees the specialists' names and descriptions and answers with a structured `route_to`
enum of their names. A pick that names no specialist follows `fallback`: `first` sends the input to
the first specialist, `fail` fails the run with `invalid_route`.

Output: {"specialist": name, "output": the specialist's output}
Events: pattern.step {"step": "route", "specialist": name, "requested": router's pick, "fallback": bool}
"""

from __future__ import annotations

from typing import Any

from agents.runtime.validation import Key, choice
from orchestrations.patterns.base import OrchestrationError, Output, Pattern, PatternRun, inputs_from

ROUTE_TO = "route_to"


async def execute(run: PatternRun) -> Output:
    specialists = range(1, len(run.agents))
    route_to = {
        "name": ROUTE_TO,
        "type": "enum",
        "enum_values": [run.names[p] for p in specialists],
        "description": "The name of the one specialist who should handle this input.",
    }
    instructions = (
        "You are a router. Do not answer the input yourself: choose the one specialist best suited to "
        f"handle it and give their name in `{ROUTE_TO}`.\nSpecialists:\n{run.roster(specialists)}"
    )
    async with run.step("route") as step:
        decision = await run.call(
            step,
            0,
            inputs_from(run.agents[0], run.inputs),
            instructions=instructions,
            extra_outputs=[route_to],
            essential=True,
        )
    requested = decision.get(ROUTE_TO)
    position = _specialist(run, requested)
    name = run.names[position]
    await run.emit_step("route", specialist=name, requested=requested, fallback=name != requested)
    async with run.step("specialist", specialist=name) as step:
        output = await run.call(step, position, inputs_from(run.agents[position], run.inputs), essential=True)
    return {"specialist": name, "output": output}


def _specialist(run: PatternRun, requested: Any) -> int:
    for position in range(1, len(run.agents)):
        if run.names[position] == requested:
            return position
    if run.config["fallback"] == "first":
        return 1
    raise OrchestrationError(
        "invalid_route", f"The router chose {requested!r}, which is none of its specialists.", status=502
    )


PATTERN = Pattern(
    id="router",
    name="Router",
    description="The first agent routes the input to exactly one of the other agents, by their descriptions.",
    min_agents=2,
    max_agents=10,
    roles=("router", "specialist", "..."),
    execute=execute,
    options={"fallback": Key(choice(("first", "fail")), "first")},
)
