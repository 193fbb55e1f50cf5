"""Fakes for the agent runtime's collaborators: a scripted gateway and a recorder in memory."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from agents.runtime.types import AgentSpec
from providers.llm.types import Completion, Delta, LLMCall, LLMError, ToolCall, Usage
from tests.agents.agent_configs import engine_agent_config
from tests.fakes.recorder import MemoryRecorder

# A scripted reply: a Completion; a dict (a structured answer); a str (raw text); an LLMError to
# raise; or a callable taking the LLMCall and returning (or awaiting to) one of those.
Reply = Any


class FakeGateway:
    """Answers each agent's calls from that agent's script, in order, and records every call."""

    def __init__(self, stream_chunk: int = 4):
        self.scripts: dict[str, list[Reply]] = {}
        self.calls: list[LLMCall] = []
        self.streamed: list[LLMCall] = []  # the calls that came through stream()
        self._stream_chunk = stream_chunk

    def script(self, agent_id: str, *replies: Reply) -> FakeGateway:
        self.scripts.setdefault(agent_id, []).extend(replies)
        return self

    @staticmethod
    def answer(
        parsed: Mapping[str, Any] | None = None,
        *,
        text: str | None = None,
        tool_calls: Sequence[ToolCall] = (),
        input_tokens: int = 10,
        output_tokens: int = 5,
        cost_usd: str = "0.001",
    ) -> Completion:
        return Completion(
            text=json.dumps(parsed) if text is None and parsed is not None else (text or ""),
            model="fake-model",
            usage=Usage(input_tokens, output_tokens),
            parsed=parsed,
            tool_calls=tuple(tool_calls),
            cost_usd=Decimal(cost_usd),
        )

    def calls_of(self, agent_id: str) -> list[LLMCall]:
        return [call for call in self.calls if call.agent_id == agent_id]

    async def complete(self, call: LLMCall) -> Completion:
        self.calls.append(call)
        script = self.scripts.get(call.agent_id) or []
        if not script:
            raise AssertionError(f"no scripted reply left for {call.agent_id} (turn {call.request.turn})")
        reply = script.pop(0)
        if callable(reply):
            reply = reply(call)
            if inspect.isawaitable(reply):
                reply = await reply
        if isinstance(reply, LLMError):
            raise reply
        if isinstance(reply, str):
            return self.answer(text=reply)
        if isinstance(reply, Mapping):
            return self.answer(reply)
        return reply

    async def stream(self, call: LLMCall):
        self.streamed.append(call)
        completion = await self.complete(call)
        text = completion.text
        for start in range(0, len(text), self._stream_chunk):
            yield Delta(text[start : start + self._stream_chunk])
        yield completion


@pytest.fixture
def make_spec() -> Callable[..., AgentSpec]:
    def make(
        agent_id: str = "agent-" + "a" * 32,
        name: str = "Helper",
        description: str = "Answers questions.",
        tool_agents: Sequence[AgentSpec] = (),
        **config: Any,
    ) -> AgentSpec:
        config.setdefault("tools", [{"agent_id": agent.agent_id} for agent in tool_agents])
        return AgentSpec(agent_id, name, description, engine_agent_config(**config), tools=tuple(tool_agents))

    return make


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def recorder() -> MemoryRecorder:
    return MemoryRecorder()
