"""A react model cannot make its execution run unbounded tool calls: past `per_turn` calls of one
turn or `per_run` in all, the calls are answered with a `tool_call_limit` error, not run."""

from __future__ import annotations

import json

import pytest

from agents.runtime import react
from agents.runtime.react import ToolCallLimits
from agents.runtime.runner import run_agent
from providers.llm.types import ToolCall

AGENT = "agent-" + "a" * 32
LOOKUP = "agent-" + "b" * 32


@pytest.fixture
def react_agent(make_spec):
    lookup = make_spec(
        agent_id=LOOKUP,
        name="Order Lookup",
        description="Finds an order by its id.",
        inputs=[{"name": "order_id", "type": "int", "description": "The order number"}],
        outputs=[{"name": "status", "type": "string"}],
    )
    return make_spec(strategy="react", tool_agents=[lookup], tools=[{"agent_id": LOOKUP}], max_steps=5)


@pytest.fixture
def limits(monkeypatch):
    def set_limits(**values):
        monkeypatch.setattr(react, "tool_call_limits", ToolCallLimits(**values))

    return set_limits


def lookups(first: int, count: int):
    return [ToolCall(f"c{n}", "order_lookup", {"order_id": n}) for n in range(first, first + count)]


async def run(spec, gateway, recorder):
    return await run_agent(spec, {"question": "q"}, gateway=gateway, recorder=recorder)


async def test_calls_past_the_per_turn_cap_are_refused_not_run(limits, react_agent, gateway, recorder):
    limits(per_turn=3, per_run=100)
    gateway.script(AGENT, gateway.answer(tool_calls=lookups(0, 50)), {"answer": "done"})
    gateway.script(LOOKUP, *[{"status": "ok"}] * 50)
    result = await run(react_agent, gateway, recorder)
    assert result.output == {"answer": "done"}
    assert len(gateway.calls_of(LOOKUP)) == 3  # three tool agents ran, not fifty
    assert result.attributes["tool_calls"] == ["order_lookup"] * 3
    assert result.attributes["tool_calls_refused"] == 47

    answers = gateway.calls_of(AGENT)[1].request.messages[3:]
    assert [message.tool_call_id for message in answers] == [f"c{n}" for n in range(50)]  # all answered
    refusal = json.loads(answers[3].content)["error"]
    assert refusal["code"] == "tool_call_limit" and "3 tool calls per turn" in refusal["message"]
    assert [span["kind"] for span in recorder.children(result.span_id)] == ["tool"] * 3


async def test_the_per_run_cap_bounds_calls_across_turns_then_the_answer_is_asked_for(
    limits, react_agent, gateway, recorder
):
    limits(per_turn=3, per_run=5)
    gateway.script(
        AGENT,
        gateway.answer(tool_calls=lookups(0, 3)),
        gateway.answer(tool_calls=lookups(3, 3)),  # only 2 left in the run
        {"answer": "best effort"},
    )
    gateway.script(LOOKUP, *[{"status": "ok"}] * 10)
    result = await run(react_agent, gateway, recorder)
    assert result.output == {"answer": "best effort"}
    assert len(gateway.calls_of(LOOKUP)) == 5
    assert result.attributes["tool_calls_refused"] == 1
    # With no tool call left, the model is asked for its answer without tools (max_steps is 5).
    calls = gateway.calls_of(AGENT)
    assert len(calls) == 3 and calls[-1].request.tools == ()


async def test_within_the_caps_nothing_is_refused(react_agent, gateway, recorder):
    assert react.tool_call_limits.per_turn >= 2
    gateway.script(AGENT, gateway.answer(tool_calls=lookups(0, 2)), {"answer": "done"})
    gateway.script(LOOKUP, {"status": "ok"}, {"status": "ok"})
    result = await run(react_agent, gateway, recorder)
    assert len(gateway.calls_of(LOOKUP)) == 2 and "tool_calls_refused" not in result.attributes
