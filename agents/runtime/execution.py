"""One agent execution as the strategies see it: its spec, span and collaborators, and its model calls
(numbered by turn, streamed as `llm.delta` events when asked, usage summed)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from agents.runtime.tool_sources import McpToolCaller
from agents.runtime.types import AgentResult, AgentSpec, RunAgent
from providers.llm.types import (
    Completion,
    CompletionRequest,
    Gateway,
    LLMCall,
    Message,
    ProviderError,
    Recorder,
    ToolCall,
    ToolSpec,
    Usage,
)

# Keys of the config's provider section that address the provider rather than configure the call.
_PROVIDER_ADDRESS_KEYS = ("provider", "model", "provider_id")


def completion_dump(completion: Completion) -> dict[str, Any]:
    """A turn's answer as JSON, to give it again when its paused execution is made again."""
    return {
        "text": completion.text,
        "model": completion.model,
        "finish_reason": completion.finish_reason,
        "parsed": completion.parsed,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": dict(c.arguments)} for c in completion.tool_calls
        ],
    }


def completion_load(data: Mapping[str, Any]) -> Completion:
    """`completion_dump` read back, with no usage: it was counted when it was made."""
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", ()))
    return Completion(
        text=data["text"],
        model=data["model"],
        usage=Usage(),
        finish_reason=data.get("finish_reason", "stop"),
        parsed=data.get("parsed"),
        tool_calls=calls,
    )


def provider_options(provider: Mapping[str, Any]) -> dict[str, Any]:
    """The provider section minus provider/model/provider_id (mock: responses, latency_ms)."""
    return {key: value for key, value in provider.items() if key not in _PROVIDER_ADDRESS_KEYS}


class Execution:
    """The state of one agent execution shared by its strategy's steps."""

    def __init__(
        self,
        spec: AgentSpec,
        *,
        span_id: str,
        gateway: Gateway,
        recorder: Recorder,
        run_tool: RunAgent,
        stream: bool,
        deadline: float,
        mcp: McpToolCaller | None = None,
        key: str | None = None,
    ):
        self.spec = spec
        self.key = key  # the agent call's place in its run (its tool calls are keyed under it)
        self.span_id = span_id
        self.recorder = recorder
        self.run_tool = run_tool  # runs a tool agent under a given parent span
        self.mcp = mcp  # lists and calls the MCP tools of the run's organization
        self.turns = 0
        # Answers of the turns an earlier execution of this call made before it paused for an
        # approval: given again, not asked again (`completion_load`); and the turns of this one.
        self.recorded_turns: list[Completion] = []
        self.made_turns: list[Completion] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = Decimal(0)
        self._gateway = gateway
        self._stream = stream
        self.deadline = deadline  # event-loop time by which the whole execution must end

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        json_schema: Mapping[str, Any] | None = None,
        schema_name: str = "output",
        tools: Sequence[ToolSpec] = (),
    ) -> Completion:
        """Calls the model once through the gateway, as the next turn of this execution."""
        call = self._call(messages, json_schema, schema_name, tools)
        self.turns += 1
        if self.turns <= len(self.recorded_turns):  # paid by the execution that asked it
            completion = self.recorded_turns[self.turns - 1]
        else:
            completion = await (
                self._complete_streaming(call) if self._stream else self._gateway.complete(call)
            )
            self._add_usage(
                completion.usage.input_tokens, completion.usage.output_tokens, completion.cost_usd
            )
        self.made_turns.append(completion)
        return completion

    def add_tool_usage(self, result: AgentResult) -> None:
        """Counts a tool agent's usage into this execution's totals."""
        self._add_usage(result.input_tokens, result.output_tokens, result.cost_usd)

    def _add_usage(self, input_tokens: int, output_tokens: int, cost_usd: Decimal) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += cost_usd

    def _call(
        self,
        messages: Sequence[Message],
        json_schema: Mapping[str, Any] | None,
        schema_name: str,
        tools: Sequence[ToolSpec],
    ) -> LLMCall:
        settings = self.spec.settings
        provider = settings.provider
        request = CompletionRequest(
            messages=tuple(messages),
            model=provider["model"],
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            json_schema=json_schema,
            schema_name=schema_name,
            tools=tuple(tools),
            # The provider's own deadline ends with the execution's, so retries never outlive it.
            timeout_s=max(self.deadline - asyncio.get_running_loop().time(), 0.001),
            max_retries=settings.max_retries,
            turn=self.turns,
            provider_options=provider_options(provider),
        )
        budget = settings.budget_limit_usd
        return LLMCall(
            request,
            provider_kind=provider["provider"],
            provider_id=provider.get("provider_id"),
            agent_id=self.spec.agent_id,
            agent_budget_limit_usd=None if budget is None else Decimal(str(budget)),
            parent_span_id=self.span_id,
        )

    async def _complete_streaming(self, call: LLMCall) -> Completion:
        final = None
        async for item in self._gateway.stream(call):
            if isinstance(item, Completion):
                final = item
            else:
                data = {"text": item.text, "turn": call.request.turn}
                await self.recorder.emit("llm.delta", agent_id=self.spec.agent_id, data=data)
        if final is None:
            raise ProviderError("the provider's stream ended without a final completion")
        return final
