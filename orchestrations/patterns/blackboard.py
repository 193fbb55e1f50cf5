"""Blackboard: the other agents (contributors) work on a shared blackboard until the first agent
(the controller) says it is done, or `max_iterations` iterations have run.

Each iteration the contributors write concurrently, each seeing the blackboard as it stood and the
controller's last review; the blackboard keeps each contributor's latest contribution under its
name. The controller then reviews the blackboard and answers a structured `done` bool.

Output: {"output": the controller's last review, "blackboard": {contributor name: contribution},
         "iterations": n, "done": bool}
Events: pattern.step {"step": "iteration", "iteration": n, "contributors": [names], "done": bool}
"""

from __future__ import annotations

from typing import Any

from agents.runtime.validation import Key, integer
from orchestrations.patterns.base import (
    Output,
    Pattern,
    PatternRun,
    inputs_after_the_brief,
    inputs_with_brief,
)

DONE = "done"
DONE_FIELD = {
    "name": DONE,
    "type": "bool",
    "description": "true when the blackboard holds a complete answer to the input",
}
CONTRIBUTE = (
    "You contribute to a shared blackboard with other specialists. Read the `blackboard` and the "
    "controller's last review, then add what your expertise brings towards answering the input."
)
CONTROL = (
    "You control a shared blackboard that specialists write to. Review it: state the answer as it "
    f"stands and what is still missing, and set `{DONE}` to true once the answer is complete."
)


async def execute(run: PatternRun) -> Output:
    contributors = range(1, len(run.agents))
    blackboard: dict[str, Output] = {}
    review: Output | None = None
    for iteration in range(1, run.config["max_iterations"] + 1):
        async with run.step("iteration", iteration=iteration) as step:
            outputs = await run.call_all(
                run.call(step, p, _inputs(run, p, blackboard, review, iteration), instructions=CONTRIBUTE)
                for p in contributors
            )
            contributions = run.by_name(contributors, outputs)
            blackboard.update(contributions)
            review = await run.call(
                step,
                0,
                _inputs(run, 0, blackboard, review, iteration),
                instructions=CONTROL,
                extra_outputs=[DONE_FIELD],
                essential=True,
            )
        done = review.get(DONE) is True
        await run.emit_step("iteration", iteration=iteration, contributors=list(contributions), done=done)
        if done:
            break
    return {"output": review, "blackboard": blackboard, "iterations": iteration, "done": done}


def _inputs(run: PatternRun, position: int, blackboard: dict, review: Output | None, iteration: int) -> dict:
    brief: dict[str, Any] = {
        "input": run.inputs,
        "iteration": iteration,
        "blackboard": dict(blackboard),
        "controller_review": review,
    }
    return inputs_with_brief(run.agents[position], brief, run.inputs)


PATTERN = Pattern(
    id="blackboard",
    name="Blackboard",
    description=(
        "Agents contribute to a shared blackboard until the first agent, the controller, says the "
        "answer is done or the iteration limit is reached."
    ),
    min_agents=2,
    max_agents=10,
    roles=("controller", "contributor", "..."),
    execute=execute,
    caller_inputs=inputs_after_the_brief,
    options={"max_iterations": Key(integer(1, 50), 5)},
)
