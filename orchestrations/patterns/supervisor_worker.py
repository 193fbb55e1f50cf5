"""Supervisor-worker: the first agent (the supervisor) splits the task into subtasks for the other
agents (the workers), the workers do them concurrently, and the supervisor combines their results.

`routing.mode`: `semantic` asks the supervisor to assign each subtask to a worker by the workers'
descriptions, as a structured `subtasks` output `[{"worker": name, "task": text}]`; `round_robin`
asks it only for `subtasks: [text]` and hands them to the workers in turn, without asking. At most
`max_subtasks` subtasks run; entries naming no worker or no task are dropped. A plan left with no
subtask fails the run with 422 `invalid_plan`, the supervisor's answer kept on the plan span.

Output: {"output": the supervisor's combined output, "subtasks": [{"worker", "task", "output"}]}
Events: pattern.step {"step": "plan", "mode", "assignments": [{"worker", "task"}], "dropped": n}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.runtime.validation import Key, choice, integer
from orchestrations.patterns.base import (
    OrchestrationError,
    Output,
    Pattern,
    PatternRun,
    as_text,
    inputs_from,
    inputs_with_brief,
)
from orchestrations.patterns.options import options

SUBTASKS = "subtasks"
COMBINE = (
    "Your workers have done the subtasks you assigned (see `results`). Combine their results into "
    "the final answer to the original task."
)

Assignment = tuple[int, str]  # (worker position, task)


async def execute(run: PatternRun) -> Output:
    mode = run.config["routing"]["mode"]
    supervisor = run.agents[0]
    async with run.step("plan", mode=mode) as step:
        plan = await run.call(
            step,
            0,
            inputs_from(supervisor, run.inputs),
            instructions=_plan_instructions(run, mode),
            extra_outputs=[_subtasks_field(run, mode)],
            essential=True,
        )
        entries = plan.get(SUBTASKS)
        entries = entries if isinstance(entries, list) else []
        assignments = _assignments(run, entries, mode)
        if not assignments:
            step.attributes["plan"] = plan  # the trace shows what the supervisor answered instead
            raise _empty_plan(run, mode)
    await run.emit_step(
        "plan",
        mode=mode,
        assignments=[{"worker": run.names[w], "task": t} for w, t in assignments],
        dropped=len(entries) - len(assignments),
    )
    results = await _work(run, assignments)
    async with run.step("combine") as step:
        combined = await run.call(
            step,
            0,
            inputs_with_brief(supervisor, {"task": run.inputs, "results": results}, run.inputs),
            instructions=COMBINE,
            essential=True,
        )
    return {"output": combined, "subtasks": results}


async def _work(run: PatternRun, assignments: list[Assignment]) -> list[dict[str, Any]]:
    role = f"You do one subtask of a larger task shared by a team. The whole task:\n{as_text(run.inputs)}"
    async with run.step("work", subtasks=len(assignments)) as step:
        outputs = await run.call_all(
            run.call(step, worker, inputs_from(run.agents[worker], {"task": task}), instructions=role)
            for worker, task in assignments
        )
    return [
        {"worker": run.names[worker], "task": task, "output": output}
        for (worker, task), output in zip(assignments, outputs, strict=True)
        if output is not None
    ]


def _plan_instructions(run: PatternRun, mode: str) -> str:
    limit = run.config["max_subtasks"]
    workers = range(1, len(run.agents))
    if mode == "round_robin":
        return (
            f"You supervise {len(workers)} workers. Do not do the task yourself: split it into at most "
            f"{limit} independent, self-contained subtasks, listed in `{SUBTASKS}`."
        )
    return (
        f"You supervise a team of workers. Do not do the task yourself: split it into at most {limit} "
        f"independent, self-contained subtasks and assign each, in `{SUBTASKS}`, to the worker whose "
        f"description fits it best.\nWorkers:\n{run.roster(workers)}"
    )


def _subtasks_field(run: PatternRun, mode: str) -> Mapping[str, Any]:
    """The plan output, its items described by JSON Schema so that structured output (and the mock's
    schema-derived answer) can only name real workers."""
    if mode == "round_robin":
        shape = "a list of strings, each one subtask"
        items: dict[str, Any] = {"type": "string", "minLength": 1}
    else:
        names = ", ".join(run.names[1:])
        shape = f'a list of {{"worker": <one of: {names}>, "task": <what that worker must do>}}'
        items = {
            "type": "object",
            "properties": {
                "worker": {"type": "string", "enum": list(run.names[1:])},
                "task": {"type": "string", "minLength": 1},
            },
            "required": ["worker", "task"],
            "additionalProperties": False,
        }
    return {"name": SUBTASKS, "type": "array", "items": items, "description": f"The subtasks: {shape}."}


def _empty_plan(run: PatternRun, mode: str) -> OrchestrationError:
    """The model answered, but with nothing to do: a failed run (422), not a provider outage (502)."""
    wanted = "a task" if mode == "round_robin" else f"a worker ({', '.join(run.names[1:])}) and a task"
    return OrchestrationError(
        "invalid_plan",
        f"The supervisor's plan assigned no subtask: no entry of `{SUBTASKS}` gave {wanted}. "
        "Its answer is on the plan span of the run's trace.",
        status=422,
    )


def _assignments(run: PatternRun, entries: list[Any], mode: str) -> list[Assignment]:
    workers = {run.names[p]: p for p in range(1, len(run.agents))}
    if mode == "round_robin":
        tasks = [entry for entry in entries if _is_task(entry)]
        positions = list(workers.values())
        assignments = [(positions[i % len(positions)], task) for i, task in enumerate(tasks)]
    else:
        assignments = [
            (workers[entry["worker"]], entry["task"])
            for entry in entries
            if isinstance(entry, Mapping)
            and _is_task(entry.get("task"))
            and isinstance(entry.get("worker"), str)
            and entry["worker"] in workers
        ]
    return assignments[: run.config["max_subtasks"]]


def _is_task(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


PATTERN = Pattern(
    id="supervisor_worker",
    name="Supervisor-worker",
    description=(
        "The first agent splits the task into subtasks and assigns them to the other agents by their "
        "descriptions; they work concurrently and the first agent combines their results."
    ),
    min_agents=2,
    max_agents=20,
    roles=("supervisor", "worker", "..."),
    execute=execute,
    options={
        "routing": Key(options({"mode": Key(choice(("semantic", "round_robin")), "semantic")}), {}),
        "max_subtasks": Key(integer(1, 50), 5),
    },
)
