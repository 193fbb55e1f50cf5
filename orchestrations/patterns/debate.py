"""Debate: all agents but the last (the debaters) argue over the input for `rounds` rounds; the
last agent (the judge) gives the verdict.

In each round the debaters argue concurrently, each seeing the others' arguments of the round
before (`other_arguments`); the judge then reads the whole transcript and names the winner in a
structured `winner` enum (a debater's name, or "draw").

Output: {"verdict": the judge's output, "winner": name, "draw" or None,
         "transcript": [{"round", "debater", "argument"}, ...]}
Events: pattern.step {"step": "round", "round": n, "debaters": [names]} as each round starts, then
        {"step": "verdict", "winner"}
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

WINNER = "winner"
DRAW = "draw"


async def execute(run: PatternRun) -> Output:
    debaters = range(len(run.agents) - 1)
    arguments: dict[str, Output] = {}  # each debater's latest argument
    transcript: list[dict[str, Any]] = []
    for number in range(1, run.config["rounds"] + 1):
        await run.emit_step("round", round=number, debaters=[run.names[p] for p in debaters])
        async with run.step("round", round=number) as step:
            outputs = await run.call_all(
                run.call(
                    step, p, _debater_inputs(run, p, number, arguments), instructions=_debater_role(run, p)
                )
                for p in debaters
            )
        latest = run.by_name(debaters, outputs)
        transcript += [{"round": number, "debater": name, "argument": arg} for name, arg in latest.items()]
        arguments.update(latest)
    verdict, winner = await _judge(run, transcript)
    await run.emit_step("verdict", winner=winner)
    return {"verdict": verdict, "winner": winner, "transcript": transcript}


def _debater_role(run: PatternRun, position: int) -> str:
    others = ", ".join(name for p, name in enumerate(run.names[:-1]) if p != position)
    return (
        f"You are {run.names[position]}, in a debate with {others} over {run.config['rounds']} rounds. "
        "Argue your position on the input; from the second round on, answer the other debaters' last "
        "arguments (`other_arguments`)."
    )


def _debater_inputs(run: PatternRun, position: int, number: int, arguments: dict[str, Output]) -> dict:
    brief = {
        "input": run.inputs,
        "round": number,
        "other_arguments": {name: arg for name, arg in arguments.items() if name != run.names[position]},
    }
    return inputs_with_brief(run.agents[position], brief, run.inputs)


async def _judge(run: PatternRun, transcript: list[dict[str, Any]]) -> tuple[Output, str | None]:
    judge = len(run.agents) - 1
    choices = [*run.names[:-1], DRAW]
    winner_field = {
        "name": WINNER,
        "type": "enum",
        "enum_values": choices,
        "description": "The debater who argued best, or draw.",
    }
    instructions = (
        f"You judge a debate between {', '.join(run.names[:-1])} (the `transcript`). Weigh their "
        f"arguments, give your verdict and name the winner in `{WINNER}`."
    )
    brief = {"input": run.inputs, "transcript": transcript}
    async with run.step("judge") as step:
        verdict = await run.call(
            step,
            judge,
            inputs_with_brief(run.agents[judge], brief, run.inputs),
            instructions=instructions,
            extra_outputs=[winner_field],
            essential=True,
        )
    winner = verdict.get(WINNER)
    return verdict, winner if winner in choices else None


PATTERN = Pattern(
    id="debate",
    name="Debate",
    description="Debaters argue over the input for a number of rounds; the last agent judges the debate.",
    min_agents=3,
    max_agents=5,
    roles=("debater", "...", "judge"),
    execute=execute,
    caller_inputs=inputs_after_the_brief,
    options={"rounds": Key(integer(1, 10), 2)},
)
