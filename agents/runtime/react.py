"""The react strategy: tool agents and MCP tools offered as functions through native tool calling.

Every call the model makes is a `tool` span (its arguments and result, redacted by the MCP caller)
between `tool.started` and `tool.completed` / `tool.failed` events. A tool that fails answers the
model with a tool error, and the run goes on; only the run's own limits (deadline, budget) end it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import keyword
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agents.runtime.approvals import (
    ApprovalFailed,
    ApprovalRequest,
    approval_decide,
    recorded_tool,
)
from agents.runtime.execution import Execution
from agents.runtime.prompt import final_answer_request, opening_messages, output_fields
from agents.runtime.schema import signature_json_schema
from agents.runtime.structured import Outcome, accept_or_repair, ask_for_fields
from agents.runtime.tool_sources import (
    McpToolCaller,
    McpToolError,
    McpToolInfo,
    McpToolRef,
    mcp_tool_refs,
)
from agents.runtime.types import AgentSpec
from providers.llm.types import Message, ToolCall, ToolSpec
from studio.errors import CodedError, WorkPaused, internal_error

_MAX_TOOL_NAME = 64  # the common limit of provider function names
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what every provider accepts as a function name
# Offered when a server could not list its tools: the call itself then reports why.
_ANY_ARGUMENTS = {"type": "object", "additionalProperties": True}


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
    """A function offered to the model and what it runs: a tool agent or an MCP tool."""

    function: ToolSpec
    agent: AgentSpec | None = None
    mcp: McpToolRef | None = None


async def react(execution: Execution, inputs: Mapping[str, object]) -> Outcome:
    """Up to `max_steps` rounds of tool calls, each run as a tool agent or an MCP tool (within
    `tool_call_limits`),
    until the model answers without tools; then (or after the last step or the last tool call
    allowed, asked once more without tools) the answer is parsed."""
    spec = execution.spec
    limits = tool_call_limits
    fields = output_fields(spec)
    tools = offered_tools(spec)
    tools |= await offered_mcp_tools(spec, execution.mcp, taken=tools.keys())
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
    overrides = {
        entry["agent_id"]: entry.get("description") for entry in spec.settings.tools if "agent_id" in entry
    }
    tools: dict[str, Tool] = {}
    for agent in spec.tools:
        name = tool_name(agent.name, taken=tools.keys())
        description = overrides.get(agent.agent_id) or agent.description or f"Runs the agent {agent.name!r}."
        parameters = signature_json_schema(agent.settings.signature.inputs)
        tools[name] = Tool(ToolSpec(name, description, parameters), agent)
    return tools


async def offered_mcp_tools(
    spec: AgentSpec, caller: McpToolCaller | None, *, taken: Collection[str] = ()
) -> dict[str, Tool]:
    """The spec's MCP tools by function name, with the input schemas their servers list (each server
    asked once, concurrently). A server that cannot list them still gets its tools offered, with
    any arguments: calling one then tells the model why it failed."""
    refs = mcp_tool_refs(spec.settings.tools)
    if not refs:
        return {}
    servers = list(dict.fromkeys(ref.server_id for ref in refs))
    listings = await asyncio.gather(*(_listing(caller, server_id) for server_id in servers))
    listed = dict(zip(servers, listings, strict=True))
    tools: dict[str, Tool] = {}
    for ref in refs:
        info = listed[ref.server_id].get(ref.tool)
        name = function_name(ref.tool, taken=[*taken, *tools])
        description = ref.description or (info.description if info else "") or f"The MCP tool {ref.tool!r}."
        parameters = info.input_schema if info else _ANY_ARGUMENTS
        tools[name] = Tool(ToolSpec(name, description, parameters), mcp=ref)
    return tools


async def _listing(caller: McpToolCaller | None, server_id: str) -> dict[str, McpToolInfo]:
    if caller is None:
        return {}
    try:
        return {info.name: info for info in await caller.list_tools(server_id)}
    except CodedError:
        return {}


def function_name(name: str, *, taken: Collection[str] = ()) -> str:
    """An MCP tool's name as a function name: kept when every provider accepts it and it is free,
    else made so (`weather.today` -> `weather_today`, `search` taken -> `search_2`)."""
    if _FUNCTION_NAME.fullmatch(name) and name not in taken and name != "output":
        return name
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[: _MAX_TOOL_NAME - 4] or "tool"
    candidate, suffix = base, 2
    while candidate in taken or candidate == "output":  # `output`: the structured answer's name
        candidate, suffix = f"{base}_{suffix}", suffix + 1
    return candidate


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
    """The answers of one turn's tool calls, run concurrently. A call waiting for its approval lets
    the others finish (their answers recorded, so not made again on resume), then pauses the run."""
    keys = [tool_call_key(execution, index, call) for index, call in enumerate(calls)]
    try:
        async with asyncio.TaskGroup() as group:
            answers = [
                group.create_task(_answer_tool_call(execution, tools, call, key))
                for call, key in zip(calls, keys, strict=True)
            ]
    except BaseExceptionGroup as failures:  # what ends the run (e.g. an approval expired: fail)
        raise failures.exceptions[0] from None
    paused = [answer.result() for answer in answers if isinstance(answer.result(), WorkPaused)]
    if paused:
        raise paused[0]
    return [answer.result() for answer in answers]


def tool_call_key(execution: Execution, index: int, call: ToolCall) -> str:
    """A tool call's place in the run: its agent call's key, the turn, its place in the turn and a
    digest of what it asks (the same on every execution given the same model answers)."""
    asked = json.dumps([call.name, dict(call.arguments)], sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(asked.encode()).hexdigest()[:16]
    return f"{execution.key or execution.spec.agent_id}/tool{execution.turns}.{index}:{digest}"


async def _answer_tool_call(
    execution: Execution, tools: Mapping[str, Tool], call: ToolCall, key: str
) -> Message | WorkPaused:
    tool = tools.get(call.name)
    if tool is None:
        content = _error_content("unknown_tool", f"there is no tool named {call.name!r}")
    else:
        try:
            content = await _run_tool(execution, tool, call, key)
        except WorkPaused as paused:
            return paused
    return Message("tool", content, tool_call_id=call.id)


async def _run_tool(execution: Execution, tool: Tool, call: ToolCall, key: str) -> str:
    """Runs the tool under a `tool` span between `tool.*` events; its failure goes back to the model
    as an error (the run's own deadline and cancellation still end the run). An MCP call an earlier
    execution of the run made is answered from its record, not made again."""
    recorder = execution.recorder
    if tool.mcp is not None:
        recorded = await recorded_tool(recorder, key)
        if recorded is not None:
            return recorded
    agent_id = execution.spec.agent_id
    about = _tool_about(tool, call)
    arguments = _redacted(execution, dict(call.arguments))
    async with recorder.batch():
        span_id = await recorder.span_open(
            kind="tool",
            name=tool.function.name,
            parent_id=execution.span_id,
            agent_id=tool.agent.agent_id if tool.agent is not None else None,
            attributes={**about, "arguments": arguments},
            key=key,
        )
        await recorder.emit("tool.started", agent_id=agent_id, data={**about, "arguments": arguments})
    try:
        content, usage = await _tool_answer(execution, tool, call, span_id, key)
    except WorkPaused:
        await recorder.span_close(span_id, status="waiting")
        raise
    except ApprovalFailed as error:  # its approval expired, and the policy fails the run
        await _tool_failed(execution, span_id, about, error)
        raise
    except CodedError as error:
        await _tool_failed(execution, span_id, about, error)
        return _error_content(error.code, error.message)
    except asyncio.CancelledError:
        await recorder.span_close(span_id, status="cancelled", error="cancelled")
        raise
    except Exception as exc:
        error = internal_error(exc, what="The tool")
        await _tool_failed(execution, span_id, about, error)
        raise error from exc
    result = _redacted(execution, content)
    async with recorder.batch():
        await recorder.span_close(span_id, status="completed", attributes={"result": result}, **usage)
        await recorder.emit("tool.completed", agent_id=agent_id, data={**about, "result": result})
    return content


async def _tool_answer(
    execution: Execution, tool: Tool, call: ToolCall, span_id: str, key: str
) -> tuple[str, dict]:
    """What the tool answered (the text the model reads) and its usage (a tool agent's). An MCP
    tool that requires approval is called once a person approved the call (see `_approved`)."""
    if tool.agent is not None:
        result = await execution.run_tool(tool.agent, call.arguments, span_id)
        execution.add_tool_usage(result)
        usage = {
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "cost_usd": result.cost_usd,
        }
        return json.dumps(result.output, ensure_ascii=False), usage
    ref = tool.mcp
    if ref.requires_approval:
        await _approved(execution, tool, call, key)
    if execution.mcp is None:
        raise McpToolError("MCP tools cannot be called here", code="mcp_unavailable", status=503)
    output = await execution.mcp.call_tool(ref.server_id, ref.tool, call.arguments)
    if output.is_error:
        raise McpToolError(output.text or "the tool reported an error", code="tool_error", status=502)
    return output.text, {}


async def _approved(execution: Execution, tool: Tool, call: ToolCall, key: str) -> None:
    """Returns once a person approved this call; raises WorkPaused while nobody decided, and
    McpToolError `approval_rejected` (a tool error the model reads, with the comment) when the call
    was rejected or its approval expired under the `reject` policy."""
    ref = tool.mcp
    subject = {
        "tool": ref.tool,
        "mcp_server": ref.server_id,
        "function": tool.function.name,
        "arguments": _redacted(execution, dict(call.arguments)),
        "agent_id": execution.spec.agent_id,
        "agent": execution.spec.name,
    }
    request = ApprovalRequest(
        key=key,
        kind="tool",
        subject=subject,
        timeout_s=ref.approval_timeout_s,
        on_timeout=ref.on_approval_timeout,
    )
    decision = await approval_decide(execution.recorder, request)
    if decision.approved:
        return
    how = "rejected by a person" if decision.status == "rejected" else "not approved in time"
    message = f"this call was {how}, so it was not made" + (
        f": {decision.comment}" if decision.comment else ""
    )
    raise McpToolError(message, code="approval_rejected", status=409)


async def _tool_failed(execution: Execution, span_id: str, about: dict, error: CodedError) -> None:
    message = _redacted(execution, error.message)
    async with execution.recorder.batch():
        await execution.recorder.span_close(
            span_id, status="failed", error=message, attributes={"code": error.code}
        )
        data = {**about, "code": error.code, "message": message}
        await execution.recorder.emit("tool.failed", agent_id=execution.spec.agent_id, data=data)


def _tool_about(tool: Tool, call: ToolCall) -> dict[str, object]:
    """What a tool span and its events say about the tool: its function, its call and its source."""
    about: dict[str, object] = {"name": tool.function.name, "tool_call_id": call.id}
    if tool.mcp is not None:
        about |= {"source": "mcp", "mcp_server": tool.mcp.server_id, "tool": tool.mcp.tool}
    else:
        about |= {"source": "agent", "tool_agent_id": tool.agent.agent_id}
    return about


def _redacted(execution: Execution, value):
    return execution.mcp.redact(value) if execution.mcp is not None else value


def _error_content(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})
