"""Strategies: chain_of_thought, self_reflection and react (tool agents through native tool calling)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from agents.config_schema import STRATEGIES as CONFIG_STRATEGIES
from agents.runtime.breaker import InMemoryCircuitBreaker
from agents.runtime.react import offered_tools, tool_name
from agents.runtime.runner import run_agent
from agents.runtime.strategies import STRATEGIES
from agents.runtime.types import AgentError
from providers.llm.types import BudgetExceeded, ToolCall

AGENT = "agent-" + "a" * 32
LOOKUP = "agent-" + "b" * 32
REFUND = "agent-" + "c" * 32


async def run(spec, inputs, gateway, recorder, **kwargs):
    return await run_agent(spec, inputs, gateway=gateway, recorder=recorder, **kwargs)


def test_every_strategy_the_schema_accepts_is_implemented():
    assert set(STRATEGIES) == set(CONFIG_STRATEGIES)


# --- chain_of_thought ------------------------------------------------------------------------


async def test_chain_of_thought_asks_for_reasoning_first_and_returns_only_the_outputs(
    make_spec, gateway, recorder
):
    spec = make_spec(strategy="chain_of_thought", outputs=[{"name": "answer", "type": "int"}])
    gateway.script(AGENT, {"reasoning": "6 times 7 is 42", "answer": 42})
    result = await run(spec, {"question": "6*7?"}, gateway, recorder)
    assert result.output == {"answer": 42}
    assert result.attributes == {"reasoning": "6 times 7 is 42"}
    assert recorder.spans[result.span_id]["attributes"]["reasoning"] == "6 times 7 is 42"
    schema = gateway.calls[0].request.json_schema
    assert list(schema["properties"]) == ["reasoning", "answer"]
    assert schema["required"] == ["reasoning", "answer"]
    assert "- reasoning (string)" in gateway.calls[0].request.messages[0].content
    assert recorder.events[-1]["data"]["output"] == {"answer": 42}


async def test_chain_of_thought_repairs_a_missing_reasoning(make_spec, gateway, recorder):
    gateway.script(AGENT, {"answer": "x"}, {"reasoning": "r", "answer": "x"})
    result = await run(make_spec(strategy="chain_of_thought"), {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "x"} and len(gateway.calls) == 2


# --- self_reflection -------------------------------------------------------------------------


async def test_self_reflection_drafts_critiques_and_revises_until_ok(make_spec, gateway, recorder):
    gateway.script(
        AGENT,
        {"answer": "draft"},
        {"ok": False, "critique": "Too vague."},
        {"answer": "revised"},
        {"ok": True, "critique": ""},
    )
    result = await run(
        make_spec(strategy="self_reflection", max_cycles=3), {"question": "q"}, gateway, recorder
    )
    assert result.output == {"answer": "revised"}
    assert result.attributes == {"critiques": ["Too vague."]}
    assert [call.request.turn for call in gateway.calls] == [0, 1, 2, 3]
    assert [call.request.schema_name for call in gateway.calls] == [
        "output",
        "critique",
        "output",
        "critique",
    ]
    assert gateway.calls[1].request.json_schema["properties"] == {
        "ok": {"type": "boolean", "description": "true when the answer needs no change"},
        "critique": {"type": "string", "description": "what to fix; empty when ok"},
    }
    revise_messages = gateway.calls[2].request.messages
    assert [message.role for message in revise_messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert json.loads(revise_messages[2].content) == {"answer": "draft"}
    assert "Too vague." in revise_messages[4].content
    assert (result.input_tokens, result.cost_usd) == (40, Decimal("0.004"))


async def test_self_reflection_stops_at_once_when_the_draft_is_ok(make_spec, gateway, recorder):
    gateway.script(AGENT, {"answer": "good"}, {"ok": True, "critique": ""})
    result = await run(make_spec(strategy="self_reflection"), {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "good"} and len(gateway.calls) == 2


async def test_self_reflection_stops_after_max_cycles(make_spec, gateway, recorder):
    gateway.script(AGENT, {"answer": "v1"}, {"ok": False, "critique": "no"}, {"answer": "v2"})
    result = await run(
        make_spec(strategy="self_reflection", max_cycles=1), {"question": "q"}, gateway, recorder
    )
    assert result.output == {"answer": "v2"}
    assert len(gateway.calls) == 3


# --- react -----------------------------------------------------------------------------------


@pytest.fixture
def lookup_agent(make_spec):
    return make_spec(
        agent_id=LOOKUP,
        name="Order Lookup",
        description="Finds an order by its id.",
        inputs=[{"name": "order_id", "type": "int", "description": "The order number"}],
        outputs=[{"name": "status", "type": "string"}],
    )


@pytest.fixture
def react_agent(make_spec, lookup_agent):
    def make(**config):
        return make_spec(
            strategy="react",
            tool_agents=[lookup_agent],
            tools=[{"agent_id": LOOKUP, "description": "Look up an order's status."}],
            **config,
        )

    return make


def tool_call(call_id, name, **arguments):
    return ToolCall(call_id, name, arguments)


async def test_react_offers_tool_agents_as_functions(react_agent, gateway, recorder):
    gateway.script(AGENT, {"answer": "no tools needed"})
    result = await run(react_agent(), {"question": "hi"}, gateway, recorder)
    assert result.output == {"answer": "no tools needed"}
    [function] = gateway.calls[0].request.tools
    assert function.name == "order_lookup"
    assert function.description == "Look up an order's status."
    assert function.parameters == {
        "type": "object",
        "properties": {"order_id": {"type": "integer", "description": "The order number"}},
        "required": ["order_id"],
        "additionalProperties": False,
    }
    assert gateway.calls[0].request.json_schema["required"] == ["answer"]


async def test_react_runs_two_tool_steps_under_tool_spans_then_answers(react_agent, gateway, recorder):
    gateway.script(
        AGENT,
        gateway.answer(text="", tool_calls=[tool_call("call-1", "order_lookup", order_id=7)]),
        gateway.answer(text="", tool_calls=[tool_call("call-2", "order_lookup", order_id=8)]),
        {"answer": "Order 7 shipped, order 8 is pending."},
    )
    gateway.script(LOOKUP, {"status": "shipped"}, {"status": "pending"})
    result = await run(react_agent(), {"question": "Where are orders 7 and 8?"}, gateway, recorder)

    assert result.output == {"answer": "Order 7 shipped, order 8 is pending."}
    assert result.attributes == {"tool_calls": ["order_lookup", "order_lookup"]}
    assert [call.request.turn for call in gateway.calls_of(AGENT)] == [0, 1, 2]
    assert [call.request.turn for call in gateway.calls_of(LOOKUP)] == [0, 0]
    lookup_inputs = [call.request.messages[1].content for call in gateway.calls_of(LOOKUP)]
    assert lookup_inputs == [
        "Inputs:\n\norder_id (int): The order number\n7",
        "Inputs:\n\norder_id (int): The order number\n8",
    ]

    final_messages = gateway.calls_of(AGENT)[2].request.messages
    assert [message.role for message in final_messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert final_messages[2].tool_calls[0].id == "call-1"
    assert (final_messages[3].tool_call_id, json.loads(final_messages[3].content)) == (
        "call-1",
        {"status": "shipped"},
    )
    assert (final_messages[5].tool_call_id, json.loads(final_messages[5].content)) == (
        "call-2",
        {"status": "pending"},
    )

    tool_spans = recorder.children(result.span_id)
    assert [span["kind"] for span in tool_spans] == ["tool", "tool"]
    for tool_span, order_id in zip(tool_spans, [7, 8], strict=True):
        assert tool_span["name"] == "order_lookup" and tool_span["status"] == "completed"
        assert tool_span["attributes"]["arguments"] == {"order_id": order_id}
        [nested] = recorder.children(tool_span["id"])
        assert (nested["kind"], nested["agent_id"], nested["status"]) == ("agent", LOOKUP, "completed")
        assert tool_span["input_tokens"] == nested["input_tokens"] == 10
    completed = [event for event in recorder.events if event["type"] == "agent.completed"]
    assert [event["agent_id"] for event in completed] == [LOOKUP, LOOKUP, AGENT]
    # Three react calls and two tool-agent calls.
    assert (result.input_tokens, result.cost_usd) == (50, Decimal("0.005"))
    recorder.assert_every_span_closed_once()


async def test_react_runs_the_tool_calls_of_one_step_concurrently(make_spec, lookup_agent, gateway, recorder):
    refund = make_spec(agent_id=REFUND, name="Refund", inputs=[], outputs=[{"name": "done", "type": "bool"}])
    spec = make_spec(strategy="react", tool_agents=[lookup_agent, refund])
    both_running = asyncio.Event()
    running = []

    async def slow(reply):
        running.append(reply)
        if len(running) == 2:
            both_running.set()
        await asyncio.wait_for(both_running.wait(), 1)
        return reply

    gateway.script(
        AGENT,
        gateway.answer(tool_calls=[tool_call("c1", "order_lookup", order_id=1), tool_call("c2", "refund")]),
        {"answer": "done"},
    )
    gateway.script(LOOKUP, lambda call: slow({"status": "ok"}))
    gateway.script(REFUND, lambda call: slow({"done": True}))
    result = await run(spec, {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "done"}
    tool_messages = gateway.calls_of(AGENT)[1].request.messages[3:]
    assert [message.tool_call_id for message in tool_messages] == ["c1", "c2"]
    assert [json.loads(message.content) for message in tool_messages] == [{"status": "ok"}, {"done": True}]


async def test_react_answers_without_tools_after_max_steps(react_agent, gateway, recorder):
    gateway.script(
        AGENT,
        gateway.answer(tool_calls=[tool_call("c1", "order_lookup", order_id=1)]),
        {"answer": "best effort"},
    )
    gateway.script(LOOKUP, {"status": "lost"})
    result = await run(react_agent(max_steps=1), {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "best effort"}
    last = gateway.calls_of(AGENT)[-1].request
    assert last.tools == () and last.turn == 1
    assert "used all your tool steps" in last.messages[-1].content


async def test_a_failing_tool_is_reported_back_to_the_model(react_agent, gateway, recorder):
    gateway.script(
        AGENT,
        gateway.answer(tool_calls=[tool_call("c1", "order_lookup", order_id="seven")]),
        gateway.answer(tool_calls=[tool_call("c2", "order_lookup", order_id=7)]),
        {"answer": "recovered"},
    )
    gateway.script(LOOKUP, BudgetExceeded("tool agent over budget"))
    result = await run(react_agent(), {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "recovered"}
    messages = gateway.calls_of(AGENT)[2].request.messages
    assert json.loads(messages[3].content)["error"]["code"] == "invalid_input"
    assert json.loads(messages[5].content)["error"] == {
        "code": "budget_exceeded",
        "message": "tool agent over budget",
    }
    tool_spans = recorder.children(result.span_id)
    assert [span["status"] for span in tool_spans] == ["failed", "failed"]
    assert [span["attributes"]["code"] for span in tool_spans] == ["invalid_input", "budget_exceeded"]


async def test_an_unknown_tool_name_is_reported_back_to_the_model(react_agent, gateway, recorder):
    gateway.script(AGENT, gateway.answer(tool_calls=[tool_call("c1", "delete_everything")]), {"answer": "ok"})
    await run(react_agent(), {"question": "q"}, gateway, recorder)
    tool_message = gateway.calls_of(AGENT)[1].request.messages[-1]
    assert json.loads(tool_message.content)["error"]["code"] == "unknown_tool"
    assert recorder.of_kind("tool") == []


async def test_a_react_final_answer_is_repaired_like_any_other(react_agent, gateway, recorder):
    gateway.script(AGENT, "free text", {"answer": "fixed"})
    result = await run(react_agent(), {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "fixed"}
    assert gateway.calls_of(AGENT)[1].request.tools == ()


async def test_cancelling_a_react_agent_cancels_its_running_tool(react_agent, gateway, recorder):
    tool_started = asyncio.Event()

    async def hang(call):
        tool_started.set()
        await asyncio.sleep(3600)

    gateway.script(AGENT, gateway.answer(tool_calls=[tool_call("c1", "order_lookup", order_id=1)]))
    gateway.script(LOOKUP, hang)
    task = asyncio.create_task(run(react_agent(), {"question": "q"}, gateway, recorder))
    await tool_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {span["kind"]: span["status"] for span in recorder.spans.values()} == {
        "agent": "cancelled",
        "tool": "cancelled",
    }
    assert [span["status"] for span in recorder.of_kind("agent")] == ["cancelled", "cancelled"]
    recorder.assert_every_span_closed_once()


async def test_a_tool_agent_with_an_open_circuit_is_reported_to_the_model(react_agent, gateway, recorder):
    breaker = InMemoryCircuitBreaker(failure_threshold=1)
    await breaker.record(LOOKUP, success=False)
    gateway.script(
        AGENT, gateway.answer(tool_calls=[tool_call("c1", "order_lookup", order_id=1)]), {"answer": "ok"}
    )
    await run(react_agent(), {"question": "q"}, gateway, recorder, breaker=breaker)
    tool_message = gateway.calls_of(AGENT)[1].request.messages[-1]
    assert json.loads(tool_message.content)["error"]["code"] == "circuit_open"
    assert gateway.calls_of(LOOKUP) == []


def test_offered_tools_fall_back_to_the_agent_description_and_get_unique_names(make_spec, lookup_agent):
    twin = make_spec(agent_id=REFUND, name="order-lookup!", description="", inputs=[])
    spec = make_spec(strategy="react", tool_agents=[lookup_agent, twin])
    tools = offered_tools(spec)
    assert list(tools) == ["order_lookup", "order_lookup_2"]
    assert tools["order_lookup"].function.description == "Finds an order by its id."
    assert tools["order_lookup_2"].function.description == "Runs the agent 'order-lookup!'."
    assert tools["order_lookup_2"].agent is twin


@pytest.mark.parametrize(
    "agent_name, expected",
    [
        ("Billing Expert", "billing_expert"),
        ("  Ünïcode Agent ", "n_code_agent"),
        ("123 go", "agent_123_go"),
        ("class", "agent_class"),
        ("!!!", "agent"),
        ("x" * 100, "x" * 60),
    ],
)
def test_tool_names_are_valid_function_names(agent_name, expected):
    assert tool_name(agent_name) == expected


def test_tool_names_avoid_taken_names():
    assert tool_name("Search", taken={"search", "search_2"}) == "search_3"


async def test_react_without_tools_behaves_like_single_shot(make_spec, gateway, recorder):
    gateway.script(AGENT, {"answer": "plain"})
    result = await run(make_spec(strategy="react"), {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "plain"}
    assert gateway.calls[0].request.tools == ()


async def test_an_agent_error_from_a_strategy_is_raised_as_is(react_agent, gateway, recorder):
    gateway.script(AGENT, "bad", "still bad")
    with pytest.raises(AgentError) as caught:
        await run(react_agent(), {"question": "q"}, gateway, recorder)
    assert caught.value.code == "invalid_output"
