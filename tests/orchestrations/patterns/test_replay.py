"""Every pattern keys its steps and agent calls the same way on every execution given the same
answers, whatever order concurrent calls finish in, so a resumed run can answer the calls it
finished from their record (`replaying`) and make only the others."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from agents.runtime.runner import replaying
from agents.runtime.types import AgentError, AgentResult, AgentSpec
from orchestrations.patterns import PATTERNS, PatternContext, run_pattern
from tests.fakes.recorder import MemoryRecorder
from tests.orchestrations.patterns.conftest import ScriptedAgents, agent, fail
from tests.orchestrations.patterns.test_consensus import SPLIT, VOTERS
from tests.orchestrations.patterns.test_debate import CON, JUDGE, PRO
from tests.orchestrations.patterns.test_debate import SCRIPT as DEBATE
from tests.orchestrations.patterns.test_sequential import EDITOR, TRANSLATOR, WRITER
from tests.orchestrations.patterns.test_sequential import SCRIPT as SEQUENCE
from tests.orchestrations.patterns.test_supervisor_worker import TEAM, plan

ROUTER, TECH, BILLING = agent("router", outputs=[]), agent("tech"), agent("billing", name="Billing")
CHAIR, FACTS, STYLE = agent("chair", name="Chair"), agent("facts"), agent("style")
TIERS = [agent("bot", name="Bot"), agent("agent", name="Agent"), agent("expert", name="Expert")]
TRIO = [agent("a"), agent("b"), agent("c")]

# (pattern, agents, script, config): each pattern's branches with more than one call per step.
CASES: dict[str, tuple[Sequence[AgentSpec], Mapping[str, Any], Mapping[str, Any]]] = {
    "sequential": ([WRITER, EDITOR, TRANSLATOR], SEQUENCE, {}),
    "parallel": (TRIO, {}, {}),
    "supervisor_worker": (
        TEAM,
        {
            "lead": [
                plan(
                    {"worker": "Researcher", "task": "find sources"},
                    {"worker": "Writer", "task": "draft"},
                    {"worker": "Writer", "task": "draft"},  # the same question twice in one step
                ),
                {"answer": "combined"},
            ]
        },
        {},
    ),
    "router": ([ROUTER, TECH, BILLING], {"router": {"route_to": "Billing"}}, {}),
    "ensemble": (TRIO, {}, {}),
    "consensus": (VOTERS, SPLIT, {}),
    "debate": ([PRO, CON, JUDGE], DEBATE, {}),
    "handoff": (
        TIERS,
        {"bot": {"answer": "?", "escalate": True}, "agent": {"answer": "done", "escalate": False}},
        {},
    ),
    "blackboard": (
        [CHAIR, FACTS, STYLE],
        {"chair": [{"answer": "more", "done": False}, {"answer": "final", "done": True}]},
        {},
    ),
}


class Execution:
    """One execution of a pattern over scripted agents that finish in a chosen order; it keeps
    every call's key and result. With `answers` (an earlier execution's results), the agents answer
    each call as they did then, like a deterministic model: scripts count turns, questions do not."""

    def __init__(
        self,
        pattern_id: str,
        *,
        slowest_first: bool,
        replay: Mapping[str, Any] | None = None,
        answers: Mapping[str, AgentResult] | None = None,
        case: tuple[Sequence[AgentSpec], Mapping[str, Any], Mapping[str, Any]] | None = None,
    ):
        self.pattern_id = pattern_id
        agents, script, self.config = case or CASES[pattern_id]
        self.agents = tuple(agents)
        self.scripted = ScriptedAgents(script)
        order = list(reversed(self.agents)) if slowest_first else list(self.agents)
        self.delay = {spec.agent_id: 0.005 * rank for rank, spec in enumerate(order)}
        self.results: dict[str, AgentResult] = {}
        self.answers = answers or {}
        self.recorder = MemoryRecorder()
        self.run_agent = self._timed if replay is None else replaying(self._timed, replay)

    async def _timed(self, spec, inputs, parent_span_id, /, *, key=None) -> AgentResult:
        await asyncio.sleep(self.delay[spec.agent_id])
        try:
            result = await self.scripted(spec, inputs, parent_span_id, key=key)
        except AgentError as failure:
            self.results[key] = failure
            raise
        result = self.answers.get(key, result)
        self.results[key] = result
        return result

    async def run(self):
        ctx = PatternContext(
            agents=self.agents,
            config=self.config,
            inputs={"question": "Why is the sky blue?"},
            run_agent=self.run_agent,
            recorder=self.recorder,
            parent_span_id="span-run",
        )
        return await run_pattern(self.pattern_id, ctx)

    def call_keys(self) -> list[str]:
        return [call.key for call in self.scripted.calls]

    def step_keys(self) -> list[str]:
        return [span["key"] for span in self.recorder.of_kind("pattern")]


def test_every_pattern_is_covered():
    assert set(CASES) == set(PATTERNS)


@pytest.mark.parametrize("pattern_id", list(CASES))
async def test_keys_are_the_same_whatever_order_concurrent_calls_finish_in(pattern_id):
    first, second = Execution(pattern_id, slowest_first=False), Execution(pattern_id, slowest_first=True)
    first_result, second_result = await first.run(), await second.run()

    assert first_result.output == second_result.output
    assert all(first.call_keys()) and len(set(first.call_keys())) == len(first.call_keys())
    assert sorted(first.call_keys()) == sorted(second.call_keys())
    assert first.step_keys() == second.step_keys() and all(first.step_keys())
    step_of_call = {key.split("/")[0] for key in first.call_keys()}
    assert step_of_call <= set(first.step_keys())


@pytest.mark.parametrize("pattern_id", list(CASES))
async def test_a_replay_of_every_finished_call_calls_no_agent(pattern_id):
    original = Execution(pattern_id, slowest_first=False)
    result = await original.run()

    replayed = Execution(pattern_id, slowest_first=True, replay=original.results)
    again = await replayed.run()

    assert replayed.scripted.calls == []
    assert (again.output, again.cost_usd, again.agents_executed) == (
        result.output,
        result.cost_usd,
        result.agents_executed,
    )


@pytest.mark.parametrize("pattern_id", list(CASES))
async def test_only_the_call_left_unrecorded_is_made_again(pattern_id):
    original = Execution(pattern_id, slowest_first=False)
    result = await original.run()
    in_flight = original.call_keys()[-1]  # the last call to start: it was in flight when the process died
    recorded = {key: value for key, value in original.results.items() if key != in_flight}

    resumed = Execution(pattern_id, slowest_first=True, replay=recorded, answers=original.results)
    again = await resumed.run()

    assert resumed.call_keys() == [in_flight]
    assert again.output == result.output and again.cost_usd == result.cost_usd


async def test_a_call_asked_something_else_is_not_answered_from_the_record():
    original = Execution("sequential", slowest_first=False)
    await original.run()
    changed = Execution("sequential", slowest_first=False, replay=original.results)
    changed.config = {"mapping": [None, {"draft": "input.question"}]}  # the editor is asked otherwise

    await changed.run()

    assert [call.agent_id for call in changed.scripted.calls] == ["editor"]  # the same answer follows


async def test_a_recorded_failure_is_replayed_as_the_same_failure():
    tolerant = (TRIO, {"b": fail("b is down")}, {"on_agent_error": "continue"})
    original = Execution("parallel", slowest_first=False, case=tolerant)
    result = await original.run()

    replayed = Execution("parallel", slowest_first=True, replay=original.results, case=tolerant)
    again = await replayed.run()

    assert replayed.scripted.calls == []
    assert again.output == result.output and again.output["errors"] == {"b": "b is down"}
