"""Our requests in the Chat Completions wire format, and its answers (whole or streamed) back."""

from __future__ import annotations

import json
from typing import Any

from providers.llm.jsontext import decode_arguments, parse_json
from providers.llm.types import (
    Completion,
    CompletionRequest,
    Message,
    ProviderError,
    ToolCall,
    ToolSpec,
    Usage,
)

# OpenAI's own API (and Azure's) replaced `max_tokens`, which reasoning models reject; servers that
# merely speak the protocol (Ollama, vLLM, ...) often know only the old name.
MAX_COMPLETION_TOKENS_KINDS = ("openai", "azure_openai")


def chat_params(request: CompletionRequest, *, kind: str) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for `request`."""
    params: dict[str, Any] = {"model": request.model, "messages": [wire_message(m) for m in request.messages]}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        token_field = "max_completion_tokens" if kind in MAX_COMPLETION_TOKENS_KINDS else "max_tokens"
        params[token_field] = request.max_tokens
    if request.json_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.schema_name,
                "schema": dict(request.json_schema),
                "strict": False,
            },
        }
    if request.tools:
        params["tools"] = [wire_tool(tool) for tool in request.tools]
    return params


def wire_message(message: Message) -> dict[str, Any]:
    """One of our messages as a chat message (assistant tool calls and tool results included)."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
            }
            for call in message.tool_calls
        ]
    return wire


def wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)},
    }


def completion_from_response(response: Any, request: CompletionRequest, *, latency_ms: float) -> Completion:
    """Our `Completion` from a `ChatCompletion`."""
    if not response.choices:
        raise ProviderError("the provider answered without any choice")
    choice = response.choices[0]
    text = choice.message.content or ""
    calls = tuple(
        ToolCall(id=call.id, name=call.function.name, arguments=decode_arguments(call.function.arguments))
        for call in choice.message.tool_calls or ()
        if call.type == "function"
    )
    return Completion(
        text=text,
        model=response.model or request.model,
        usage=usage_from(response.usage),
        finish_reason=choice.finish_reason or "stop",
        parsed=parse_json(text) if request.json_schema is not None else None,
        tool_calls=calls,
        latency_ms=latency_ms,
    )


def usage_from(usage: Any) -> Usage:
    """Our `Usage` from a `CompletionUsage` (input tokens include the cached ones)."""
    if usage is None:
        return Usage()
    details = usage.prompt_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=(details.cached_tokens or 0) if details else 0,
    )


class ChatStream:
    """Accumulates streamed chunks into the final `Completion`, handing out text as it comes."""

    def __init__(self, request: CompletionRequest):
        self.request = request
        self.model = request.model
        self.text_parts: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}  # by index: id, name, arguments (concatenated)
        self.finish_reason = "stop"
        self.usage = Usage()

    def add(self, chunk: Any) -> str:
        """Take in one `ChatCompletionChunk`; returns its text ("" when it carries none)."""
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = usage_from(chunk.usage)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        self.finish_reason = choice.finish_reason or self.finish_reason
        for call in choice.delta.tool_calls or ():
            self._add_tool_call_delta(call)
        text = choice.delta.content or ""
        self.text_parts.append(text)
        return text

    def _add_tool_call_delta(self, delta: Any) -> None:
        call = self.calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = delta.id or call["id"]
        if delta.function is not None:
            call["name"] = delta.function.name or call["name"]
            call["arguments"] += delta.function.arguments or ""

    def completion(self, *, latency_ms: float) -> Completion:
        text = "".join(self.text_parts)
        calls = tuple(
            ToolCall(id=call["id"], name=call["name"], arguments=decode_arguments(call["arguments"]))
            for _, call in sorted(self.calls.items())
        )
        return Completion(
            text=text,
            model=self.model,
            usage=self.usage,
            finish_reason=self.finish_reason,
            parsed=parse_json(text) if self.request.json_schema is not None else None,
            tool_calls=calls,
            latency_ms=latency_ms,
        )
