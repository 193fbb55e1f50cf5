"""Fakes for the pattern engine tests: a scripted RunAgent and the in-memory recorder (no Django)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from agents.runtime.types import AgentError, AgentResult, AgentSpec
from orchestrations.patterns import PatternContext, PatternResult, run_pattern
from tests.fakes.recorder import MemoryRecorder

RUN_SPAN = "span-run"


def agent(
    agent_id: str,
    *,
    name: str | None = None,
    description: str = "",
    inputs: Sequence[str] = ("question",),
    outputs: Sequence[str] = ("answer",),
) -> AgentSpec:
    """An agent whose signature has string inputs and outputs with the given names."""

    def fields(names: Sequence[str]) -> list[dict[str, Any]]:
        return [{"name": n, "type": "string", "description": "", "required": True} for n in names]

    signature = {"system_prompt": "", "inputs": fields(inputs), "outputs": fields(outputs)}
    return AgentSpec(agent_id, name or agent_id, description, config={"signature": signature})


@dataclass(frozen=True)
class Reply:
    """One scripted answer of a fake agent: its output, how long it takes, what it costs, or a failure."""

    output: Mapping[str, Any] = field(default_factory=dict)
    sleep: float = 0.0
    cost: str = "0.01"
    error: str | None = None


def fail(message: str = "the model refused", *, sleep: float = 0.0) -> Reply:
    return Reply(error=message, sleep=sleep)


@dataclass(frozen=True)
class Call:
    agent_id: str
    spec: AgentSpec
    inputs: Mapping[str, Any]
    parent_span_id: str | None
    key: str | None = None


class ScriptedAgents:
    """A fake RunAgent: each agent answers from its script in turn (its last reply repeats; unscripted
    agents fill their first output field). It records every call, which calls were cancelled, and
    the peak number of calls running at once."""

    def __init__(self, script: Mapping[str, Reply | Mapping[str, Any] | list]):
        self.script = {key: value if isinstance(value, list) else [value] for key, value in script.items()}
        self.turns: Counter[str] = Counter()
        self.calls: list[Call] = []
        self.cancelled: list[str] = []
        self.violations: list[str] = []
        self.running = 0
        self.peak = 0

    async def __call__(
        self, spec: AgentSpec, inputs: Mapping[str, Any], parent_span_id: str | None, /, *, key=None
    ):
        self.calls.append(Call(spec.agent_id, spec, inputs, parent_span_id, key))
        reply = self._next_reply(spec)
        self._check_requested(spec, reply.output)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(reply.sleep)
        except asyncio.CancelledError:
            self.cancelled.append(spec.agent_id)
            raise
        finally:
            self.running -= 1
        if reply.error:
            raise AgentError("provider_error", reply.error, status=502)
        return AgentResult(dict(reply.output), input_tokens=10, output_tokens=5, cost_usd=Decimal(reply.cost))

    def ids(self) -> list[str]:
        return [call.agent_id for call in self.calls]

    def _next_reply(self, spec: AgentSpec) -> Reply:
        outputs = spec.config["signature"]["outputs"]
        default = {outputs[0]["name"]: f"{spec.agent_id} says"} if outputs else {}
        replies = self.script.get(spec.agent_id) or [default]
        reply = replies[min(self.turns[spec.agent_id], len(replies) - 1)]
        self.turns[spec.agent_id] += 1
        return reply if isinstance(reply, Reply) else Reply(output=reply)

    def _check_requested(self, spec: AgentSpec, output: Mapping[str, Any]) -> None:
        # A real agent only answers the fields it was asked for: a scripted decision field the
        # engine did not request as an extra output is a bug in the engine.
        fields = [*spec.config["signature"]["outputs"], *spec.extra_outputs]
        requested = {f["name"] for f in fields}
        for name in output:
            if name not in requested:
                self.violations.append(f"{spec.agent_id} answered {name!r}, which was not requested")


class Orchestra:
    """Runs a pattern over scripted agents and keeps the fakes for assertions."""

    def __init__(self) -> None:
        self.recorder = MemoryRecorder()
        self.agents = ScriptedAgents({})

    async def run(
        self,
        pattern_id: str,
        agents: Sequence[AgentSpec],
        script: Mapping[str, Any] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> PatternResult:
        self.agents = ScriptedAgents(script or {})
        ctx = PatternContext(
            agents=tuple(agents),
            config=config or {},
            inputs={"question": "Why is the sky blue?"} if inputs is None else inputs,
            run_agent=self.agents,
            recorder=self.recorder,
            parent_span_id=RUN_SPAN,
        )
        return await run_pattern(pattern_id, ctx)

    def call_steps(self) -> list[tuple[str, str]]:
        """(agent id, name of the pattern span it ran under) per call; each such span hangs off the run."""
        pairs = []
        for call in self.agents.calls:
            span = self.recorder.spans[call.parent_span_id]
            assert (span["kind"], span["parent_id"]) == ("pattern", RUN_SPAN)
            pairs.append((call.agent_id, span["name"]))
        return pairs

    def calls_of(self, agent_id: str) -> list[Call]:
        return [call for call in self.agents.calls if call.agent_id == agent_id]


@pytest.fixture
def orchestra():
    orchestra = Orchestra()
    yield orchestra
    assert not orchestra.agents.violations
