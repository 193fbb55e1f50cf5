"""Consensus: every agent votes on the input, concurrently; the votes decide.

A vote is the value of `decision_field` in a voter's output (default: the first output field of
the first voter); voters whose signature lacks that field are asked for it as an extra output.
Text votes are compared trimmed and case-insensitively. `threshold`: `majority` needs more than
half of all voters to agree, `unanimous` all of them (a failed voter, under on_agent_error=continue,
counts as not agreeing).

Output: {"decision": the winning vote or None, "reached": bool, "votes": {voter name: vote},
         "tally": {vote: count}}
Events: pattern.step {"step": "tally", "tally", "decision", "reached"}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from agents.runtime.validation import Key, choice
from orchestrations.patterns.base import Output, Pattern, PatternRun, inputs_from, output_fields
from orchestrations.patterns.options import FIELD_NAME_OPTION


async def execute(run: PatternRun) -> Output:
    field = run.config["decision_field"] or _first_output(run)
    voters = range(len(run.agents))
    ballot = {"name": field, "type": "string", "description": "Your vote: the decision you stand for."}
    instructions = (
        f"You are one of {len(voters)} voters deciding on this input. Decide on your own; your vote is "
        f"the value of `{field}`."
    )
    async with run.step("vote", decision_field=field) as step:
        outputs = await run.call_all(
            run.call(
                step,
                p,
                inputs_from(run.agents[p], run.inputs),
                instructions=instructions,
                extra_outputs=[ballot],
            )
            for p in voters
        )
    votes = {name: output.get(field) for name, output in run.by_name(voters, outputs).items()}
    tally = Counter(_ballot(vote) for vote in votes.values() if vote is not None)
    decision, reached = _decide(votes, tally, len(voters), run.config["threshold"])
    await run.emit_step("tally", tally=dict(tally), decision=decision, reached=reached)
    return {"decision": decision, "reached": reached, "votes": votes, "tally": dict(tally)}


def _first_output(run: PatternRun) -> str:
    fields = output_fields(run.agents[0])
    return fields[0]["name"] if fields else "decision"


def _ballot(vote: Any) -> str:
    return vote.strip().casefold() if isinstance(vote, str) else json.dumps(vote, sort_keys=True)


def _decide(votes: Mapping[str, Any], tally: Counter, voter_count: int, threshold: str) -> tuple[Any, bool]:
    if not tally:
        return None, False
    leader, count = tally.most_common(1)[0]
    needed = voter_count if threshold == "unanimous" else voter_count // 2 + 1
    if count < needed:
        return None, False
    return next(v for v in votes.values() if v is not None and _ballot(v) == leader), True


PATTERN = Pattern(
    id="consensus",
    name="Consensus",
    description="Every agent votes on the input concurrently; a majority (or unanimity) decides.",
    min_agents=3,
    max_agents=10,
    roles=("voter", "..."),
    execute=execute,
    options={
        "decision_field": Key(FIELD_NAME_OPTION, None),
        "threshold": Key(choice(("majority", "unanimous")), "majority"),
    },
)
