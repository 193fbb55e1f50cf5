"""The react loop with MCP tools, in the engine alone (no Django, no network): a fake `McpToolCaller`
stands for the Django side. Functions, their names and schemas, the caps on calls, redaction,
failures as tool errors, and the run's own deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from agents.runtime import react
from agents.runtime.react import ToolCallLimits, function_name
from agents.runtime.runner import run_agent
from agents.runtime.tool_sources import McpToolError, McpToolInfo, McpToolOutput
from agents.runtime.types import AgentError
from providers.llm.types import ToolCall

AGENT = "agent-" + "a" * 32
LOOKUP = "agent-" + "b" * 32
ORDERS = "mcps-" + "1" * 32
WEATHER = "mcps-" + "2" * 32
ORDER_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}


class FakeCaller:
    """Lists the tools of `servers` ({server id: [McpToolInfo]}) and answers calls with `answer`."""

    def __init__(self, servers: Mapping[str, Sequence[McpToolInfo]], answer=None):
        self.servers = servers
        self.answer = answer or (lambda server_id, tool, arguments: McpToolOutput(json.dumps(arguments)))
        self.listed: list[str] = []
        self.calls: list[tuple[str, str, dict]] = []

    async def list_tools(self, server_id: str) -> Sequence[McpToolInfo]:
        self.listed.append(server_id)
        if server_id not in self.servers:
            raise McpToolError("could not connect to the MCP server")
        return self.servers[server_id]

    async def call_tool(self, server_id: str, tool: str, arguments: Mapping[str, Any]) -> McpToolOutput:
        self.calls.append((server_id, tool, dict(arguments)))
        answer = self.answer(server_id, tool, arguments)
        return await answer if asyncio.iscoroutine(answer) else answer

    def redact(self, value: Any) -> Any:
        text = json.dumps(value)
        return json.loads(text.replace("hunter2", "[redacted]"))


def mcp(server: str, tool: str, **extra) -> dict[str, Any]:
    return {"mcp_server": server, "tool": tool, "description": None, "requires_approval": False, **extra}


def lookup_order(call_id: str, order_id: str = "42") -> ToolCall:
    return ToolCall(call_id, "lookup_order", {"order_id": order_id})


@pytest.fixture
def orders_caller() -> FakeCaller:
    return FakeCaller({ORDERS: [McpToolInfo("lookup_order", "Finds an order.", ORDER_SCHEMA)]})


async def run(spec, gateway, recorder, caller):
    return await run_agent(spec, {"question": "q"}, gateway=gateway, recorder=recorder, mcp=caller)


async def test_mcp_tools_are_offered_with_their_servers_schemas_and_called(
    make_spec, gateway, recorder, orders_caller
):
    spec = make_spec(strategy="react", tools=[mcp(ORDERS, "lookup_order")])
    gateway.script(AGENT, gateway.answer(tool_calls=[lookup_order("c1")]), {"answer": "shipped"})

    result = await run(spec, gateway, recorder, orders_caller)

    assert result.output == {"answer": "shipped"}
    (function,) = gateway.calls_of(AGENT)[0].request.tools
    assert (function.name, function.description, function.parameters) == (
        "lookup_order",
        "Finds an order.",
        ORDER_SCHEMA,
    )
    assert orders_caller.calls == [(ORDERS, "lookup_order", {"order_id": "42"})]
    answer = gateway.calls_of(AGENT)[1].request.messages[-1]
    assert answer.role == "tool" and json.loads(answer.content) == {"order_id": "42"}
    (span,) = recorder.of_kind("tool")
    assert span["status"] == "completed" and span["attributes"]["tool"] == "lookup_order"
    assert [event["type"] for event in recorder.events if event["type"].startswith("tool.")] == [
        "tool.started",
        "tool.completed",
    ]
    recorder.assert_every_span_closed_once()


async def test_each_server_is_listed_once_and_names_never_collide(make_spec, gateway, recorder):
    caller = FakeCaller(
        {
            ORDERS: [McpToolInfo("lookup_order", "", ORDER_SCHEMA), McpToolInfo("weather.today", "", {})],
            WEATHER: [McpToolInfo("lookup_order", "Another one.", {})],
        }
    )
    tool_agent = make_spec(
        agent_id=LOOKUP, name="Lookup order", outputs=[{"name": "status", "type": "string"}]
    )
    spec = make_spec(
        strategy="react",
        tool_agents=[tool_agent],
        tools=[
            {"agent_id": LOOKUP},
            mcp(ORDERS, "lookup_order", description="Orders, by number."),
            mcp(ORDERS, "weather.today"),
            mcp(WEATHER, "lookup_order"),
        ],
    )
    gateway.script(AGENT, {"answer": "no tools needed"})

    await run(spec, gateway, recorder, caller)

    assert sorted(caller.listed) == [ORDERS, WEATHER]
    functions = {tool.name: tool.description for tool in gateway.calls_of(AGENT)[0].request.tools}
    assert functions == {
        "lookup_order": "Answers questions.",  # the tool agent, first
        "lookup_order_2": "Orders, by number.",
        "weather_today": "The MCP tool 'weather.today'.",
        "lookup_order_3": "Another one.",
    }


def test_function_names_keep_valid_mcp_names_and_fix_the_others():
    assert function_name("billing-desk") == "billing-desk"
    assert function_name("files/read.v2") == "files_read_v2"
    assert function_name("search", taken={"search", "search_2"}) == "search_3"
    assert function_name("output") == "output_2"  # the structured answer's name
    assert len(function_name("x" * 128)) <= 64


async def test_calls_past_the_per_turn_cap_are_refused_not_made(
    monkeypatch, make_spec, gateway, recorder, orders_caller
):
    monkeypatch.setattr(react, "tool_call_limits", ToolCallLimits(per_turn=2, per_run=10))
    spec = make_spec(strategy="react", tools=[mcp(ORDERS, "lookup_order")])
    asked = [lookup_order(f"c{n}", str(n)) for n in range(5)]
    gateway.script(AGENT, gateway.answer(tool_calls=asked), {"answer": "done"})

    result = await run(spec, gateway, recorder, orders_caller)

    assert len(orders_caller.calls) == 2
    assert result.attributes["tool_calls_refused"] == 3
    answers = gateway.calls_of(AGENT)[1].request.messages[-5:]
    assert [json.loads(m.content).get("error", {}).get("code") for m in answers[2:]] == [
        "tool_call_limit"
    ] * 3


async def test_a_caller_failure_and_a_server_side_error_are_tool_errors(make_spec, gateway, recorder):
    def answer(server_id, tool, arguments):
        if arguments["order_id"] == "1":
            raise McpToolError("the MCP server did not answer within 30 s", code="mcp_timeout", status=504)
        return McpToolOutput("no such order", is_error=True)

    caller = FakeCaller({ORDERS: [McpToolInfo("lookup_order", "", ORDER_SCHEMA)]}, answer)
    spec = make_spec(strategy="react", tools=[mcp(ORDERS, "lookup_order")])
    calls = [lookup_order("c1", "1"), lookup_order("c2", "2")]
    gateway.script(AGENT, gateway.answer(tool_calls=calls), {"answer": "sorry"})

    result = await run(spec, gateway, recorder, caller)

    assert result.output == {"answer": "sorry"}
    first, second = (json.loads(m.content)["error"] for m in gateway.calls_of(AGENT)[1].request.messages[-2:])
    assert first["code"] == "mcp_timeout"
    assert second == {"code": "tool_error", "message": "no such order"}
    assert [span["status"] for span in recorder.of_kind("tool")] == ["failed", "failed"]
    assert [event["data"]["code"] for event in recorder.events if event["type"] == "tool.failed"] == [
        "mcp_timeout",
        "tool_error",
    ]


async def test_arguments_and_results_are_recorded_redacted(make_spec, gateway, recorder, orders_caller):
    spec = make_spec(strategy="react", tools=[mcp(ORDERS, "lookup_order")])
    gateway.script(AGENT, gateway.answer(tool_calls=[lookup_order("c1", "hunter2")]), {"answer": "ok"})

    await run(spec, gateway, recorder, orders_caller)

    assert orders_caller.calls[0][2] == {"order_id": "hunter2"}  # the call itself is as asked
    (span,) = recorder.of_kind("tool")
    assert "hunter2" not in json.dumps([span, recorder.events], default=str)
    # The model still reads the real result: redaction is for what is stored.
    assert "hunter2" in gateway.calls_of(AGENT)[1].request.messages[-1].content


async def test_a_tool_requiring_approval_is_never_called(make_spec, gateway, recorder, orders_caller):
    spec = make_spec(strategy="react", tools=[mcp(ORDERS, "lookup_order", requires_approval=True)])
    gateway.script(AGENT, gateway.answer(tool_calls=[lookup_order("c1")]), {"answer": "ok"})

    await run(spec, gateway, recorder, orders_caller)

    assert orders_caller.calls == []
    error = json.loads(gateway.calls_of(AGENT)[1].request.messages[-1].content)["error"]
    assert error["code"] == "approval_unavailable"


async def test_without_a_caller_mcp_tools_answer_that_they_are_unavailable(make_spec, gateway, recorder):
    spec = make_spec(strategy="react", tools=[mcp(ORDERS, "lookup_order")])
    gateway.script(AGENT, gateway.answer(tool_calls=[lookup_order("c1")]), {"answer": "ok"})

    await run(spec, gateway, recorder, None)

    (function,) = gateway.calls_of(AGENT)[0].request.tools
    assert function.parameters == {"type": "object", "additionalProperties": True}
    error = json.loads(gateway.calls_of(AGENT)[1].request.messages[-1].content)["error"]
    assert error["code"] == "mcp_unavailable"


async def test_the_agents_deadline_ends_a_hanging_call_and_the_run(make_spec, gateway, recorder):
    async def hang(server_id, tool, arguments):
        await asyncio.sleep(3600)

    caller = FakeCaller({ORDERS: [McpToolInfo("lookup_order", "", ORDER_SCHEMA)]}, hang)
    spec = make_spec(strategy="react", tools=[mcp(ORDERS, "lookup_order")], timeout_s=0.3)
    gateway.script(AGENT, gateway.answer(tool_calls=[lookup_order("c1")]))

    with pytest.raises(AgentError) as failed:
        await run(spec, gateway, recorder, caller)

    assert failed.value.code == "provider_timeout"
    assert [span["status"] for span in recorder.of_kind("tool")] == ["cancelled"]
    recorder.assert_every_span_closed_once()
