"""Our requests in the Anthropic Messages wire format, and its answers back.

Anthropic has no JSON-schema response format, so a structured answer is asked for by forcing a tool
named after the schema: the tool's input is the answer.
"""

from __future__ import annotations

import json
from typing import Any

from providers.llm.jsontext import parse_json
from providers.llm.types import Completion, CompletionRequest, Message, ToolCall, ToolSpec, Usage

DEFAULT_MAX_TOKENS = 1024
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def messages_params(request: CompletionRequest) -> dict[str, Any]:
    """Keyword arguments of `messages.create` / `messages.stream` for `request`."""
    system, messages = wire_messages(request.messages)
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        params["system"] = system
    if request.temperature is not None:
        # The SDK no longer declares `temperature`; the Messages API still takes it in the body.
        params["extra_body"] = {"temperature": request.temperature}
    tools = [wire_tool(tool) for tool in request.tools]
    if request.json_schema is not None:
        tools.append(
            {
                "name": request.schema_name,
                "description": "Give your answer by calling this tool; its input is the answer.",
                "input_schema": dict(request.json_schema),
            }
        )
        params["tool_choice"] = {"type": "tool", "name": request.schema_name}
    if tools:
        params["tools"] = tools
    return params


def wire_messages(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and the conversation; tool results become user `tool_result` blocks."""
    system_parts: list[str] = []
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system_parts.append(message.content)
        elif message.role == "tool":
            _append_tool_result(wire, message)
        elif message.role == "assistant":
            wire.append({"role": "assistant", "content": _assistant_blocks(message)})
        else:
            wire.append({"role": "user", "content": message.content})
    return "\n\n".join(system_parts), wire


def _append_tool_result(wire: list[dict[str, Any]], message: Message) -> None:
    block = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
    previous = wire[-1] if wire else None
    # All results answering one assistant turn go back together, in one user message.
    if previous and previous["role"] == "user" and isinstance(previous["content"], list):
        previous["content"].append(block)
    else:
        wire.append({"role": "user", "content": [block]})


def _assistant_blocks(message: Message) -> list[dict[str, Any]] | str:
    if not message.tool_calls:
        return message.content
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.arguments)}
        for call in message.tool_calls
    ]
    return blocks


def wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "input_schema": dict(tool.parameters)}


def completion_from_message(message: Any, request: CompletionRequest, *, latency_ms: float) -> Completion:
    """Our `Completion` from a `Message`; with a schema, the forced tool's input is the answer."""
    text = "".join(block.text for block in message.content if block.type == "text")
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    parsed = None
    if request.json_schema is not None:
        answer = next((block for block in tool_uses if block.name == request.schema_name), None)
        tool_uses = [block for block in tool_uses if block is not answer]
        parsed = dict(answer.input) if answer is not None else parse_json(text)
        text = json.dumps(parsed) if answer is not None else text
    calls = tuple(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)) for block in tool_uses)
    return Completion(
        text=text,
        model=message.model or request.model,
        usage=usage_from(message.usage),
        finish_reason=_finish_reason(message.stop_reason, calls),
        parsed=parsed,
        tool_calls=calls,
        latency_ms=latency_ms,
    )


def usage_from(usage: Any) -> Usage:
    """Our `Usage`: input counts every prompt token, cache reads and writes included."""
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cache_read + cache_write,
        output_tokens=usage.output_tokens or 0,
        cached_input_tokens=cache_read,
    )


def streamed_text(event: Any, snapshot: Any, request: CompletionRequest) -> str:
    """The text a stream event adds to the answer: text deltas, or the forced tool's JSON pieces."""
    if event.type == "text":
        return event.text
    if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
        block = snapshot.content[event.index]
        if request.json_schema is not None and block.name == request.schema_name:
            return event.delta.partial_json
    return ""


def _finish_reason(stop_reason: str | None, calls: tuple[ToolCall, ...]) -> str:
    if stop_reason == "tool_use":
        return "tool_calls" if calls else "stop"
    return STOP_REASONS.get(stop_reason or "end_turn", stop_reason)
