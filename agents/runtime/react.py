"""The react strategy: tool agents offered as functions through native tool calling."""

from __future__ import annotations

import asyncio
import json
import keyword
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agents.runtime.execution import Execution
from agents.runtime.prompt import final_answer_request, opening_messages, output_fields
from agents.runtime.schema import signature_json_schema
from agents.runtime.structured import Outcome, accept_or_repair, ask_for_fields
from agents.runtime.types import AgentError, AgentSpec
from providers.llm.types import Message, ToolCall, ToolSpec
from studio.errors import internal_error

_MAX_TOOL_NAME = 64  # the common limit of provider function names


@dataclass(frozen=True)
class ToolCallLimits:
    """How many tool calls one react execution runs, whatever the model asks for: at most
    `per_turn` of one model turn and `per_run` in all; the calls past them are answered with a
    `tool_call_limit` error instead of being run."""

    per_turn: int = 8
    per_run: int = 32


# The server's limits (agents.apps sets them from the settings at start-up).
tool_call_limits = ToolCallLimits()


@dataclass(frozen=True)
class Tool:
    """A tool agent and the function it is offered to the model as."""

    function: ToolSpec
    agent: AgentSpec


async def react(execution: Execution, inputs: Mapping[str, object]) -> Outcome:
    """Up to `max_steps` rounds of tool calls, each run as a tool agent (within `tool_call_limits`),
    until the model answers without tools; then (or after the last step or the last tool call
    allowed, asked once more without tools) the answer is parsed."""
    spec = execution.spec
    limits = tool_call_limits
    fields = output_fields(spec)
    tools = offered_tools(spec)
    functions = [tool.function for tool in tools.values()]
    schema = signature_json_schema(fields)
    messages = opening_messages(spec, fields, inputs)
    used: list[str] = []
    refused = 0
    for _ in range(spec.settings.max_steps):
        if len(used) >= limits.per_run:
            break
        completion = await execution.complete(messages, json_schema=schema, tools=functions)
        if not completion.tool_calls:
            output = await accept_or_repair(execution, messages, completion, fields)
            return Outcome(output, _attributes(used, refused))
        allowed = min(limits.per_turn, limits.per_run - len(used))
        runs, over = completion.tool_calls[:allowed], completion.tool_calls[allowed:]
        messages.append(Message("assistant", completion.text, tool_calls=completion.tool_calls))
        messages += await _answer_tool_calls(execution, tools, runs)
        messages += [_refused_tool_call(call, limits) for call in over]
        used += [call.name for call in runs]
        refused += len(over)
    output = await ask_for_fields(execution, [*messages, final_answer_request()], fields)
    return Outcome(output, _attributes(used, refused))


def _attributes(used: list[str], refused: int) -> dict[str, object]:
    return {"tool_calls": used, **({"tool_calls_refused": refused} if refused else {})}


def _refused_tool_call(call: ToolCall, limits: ToolCallLimits) -> Message:
    # Every call the model made needs an answer, or providers reject the next request.
    message = f"not run: at most {limits.per_turn} tool calls per turn and {limits.per_run} per run"
    return Message("tool", _error_content("tool_call_limit", message), tool_call_id=call.id)


def offered_tools(spec: AgentSpec) -> dict[str, Tool]:
    """The spec's tool agents by function name; the description is the config's override, else the
    tool agent's own description; the parameters are the JSON Schema of its inputs."""
    overrides = {entry["agent_id"]: entry.get("description") for entry in spec.settings.tools}
    tools: dict[str, Tool] = {}
    for agent in spec.tools:
        name = tool_name(agent.name, taken=tools.keys())
        description = overrides.get(agent.agent_id) or agent.description or f"Runs the agent {agent.name!r}."
        parameters = signature_json_schema(agent.settings.signature.inputs)
        tools[name] = Tool(ToolSpec(name, description, parameters), agent)
    return tools


def tool_name(agent_name: str, *, taken: Collection[str] = ()) -> str:
    """A function name derived from an agent name (`Billing Expert` -> `billing_expert`), not in `taken`."""
    base = re.sub(r"[^a-z0-9]+", "_", agent_name.lower()).strip("_") or "agent"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = f"agent_{base}"
    base = base[: _MAX_TOOL_NAME - 4]  # room for a numeric suffix
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name


async def _answer_tool_calls(
    execution: Execution, tools: Mapping[str, Tool], calls: Sequence[ToolCall]
) -> list[Message]:
    async with asyncio.TaskGroup() as group:
        answers = [group.create_task(_answer_tool_call(execution, tools, call)) for call in calls]
    return [answer.result() for answer in answers]


async def _answer_tool_call(execution: Execution, tools: Mapping[str, Tool], call: ToolCall) -> Message:
    tool = tools.get(call.name)
    if tool is None:
        content = _error_content("unknown_tool", f"there is no tool named {call.name!r}")
    else:
        content = await _run_tool(execution, tool, call)
    return Message("tool", content, tool_call_id=call.id)


async def _run_tool(execution: Execution, tool: Tool, call: ToolCall) -> str:
    """Runs the tool agent under a `tool` span; its failure goes back to the model as an error."""
    recorder = execution.recorder
    span_id = await recorder.span_open(
        kind="tool",
        name=tool.function.name,
        parent_id=execution.span_id,
        agent_id=tool.agent.agent_id,
        attributes={"tool_call_id": call.id, "arguments": dict(call.arguments)},
    )
    try:
        result = await execution.run_tool(tool.agent, call.arguments, span_id)
    except AgentError as error:
        await recorder.span_close(
            span_id, status="failed", error=error.message, attributes={"code": error.code}
        )
        return _error_content(error.code, error.message)
    except asyncio.CancelledError:
        await recorder.span_close(span_id, status="cancelled", error="cancelled")
        raise
    except Exception as exc:
        error = internal_error(exc, what="The tool")
        await recorder.span_close(
            span_id, status="failed", error=error.message, attributes={"code": error.code}
        )
        raise error from exc
    execution.add_tool_usage(result)
    await recorder.span_close(
        span_id,
        status="completed",
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cost_usd=result.cost_usd,
    )
    return json.dumps(result.output, ensure_ascii=False)


def _error_content(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})
