"""run_agent: calls, spans, events, repair, errors, deadline, cancellation, streaming, breaker."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from agents.runtime.breaker import InMemoryCircuitBreaker
from agents.runtime.runner import bind_run_agent, run_agent
from agents.runtime.types import AgentError
from providers.llm.types import (
    BudgetExceeded,
    Delta,
    InvalidApiKey,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
)

AGENT = "agent-" + "a" * 32
PROVIDER_ID = "prov-" + "b" * 32


async def run(spec, inputs, gateway, recorder, **kwargs):
    return await run_agent(spec, inputs, gateway=gateway, recorder=recorder, **kwargs)


async def failure(spec, inputs, gateway, recorder, **kwargs) -> AgentError:
    with pytest.raises(AgentError) as caught:
        await run(spec, inputs, gateway, recorder, **kwargs)
    return caught.value


def hang_forever(call):
    return asyncio.sleep(3600)


async def test_single_shot_returns_the_parsed_output_with_usage(make_spec, gateway, recorder):
    gateway.script(AGENT, {"answer": "42"})
    result = await run(make_spec(), {"question": "meaning of life?"}, gateway, recorder)
    assert result.output == {"answer": "42"}
    assert (result.input_tokens, result.output_tokens, result.total_tokens) == (10, 5, 15)
    assert result.cost_usd == Decimal("0.001")
    assert result.execution_time_ms > 0


async def test_the_gateway_call_carries_the_config(make_spec, gateway, recorder):
    spec = make_spec(
        temperature=0.1,
        max_tokens=300,
        max_retries=4,
        timeout_s=30,
        budget_limit_usd=2.5,
        provider={
            "provider": "mock",
            "model": "mock-1",
            "provider_id": PROVIDER_ID,
            "responses": [],
            "latency_ms": 3,
        },
    )
    gateway.script(AGENT, {"answer": "ok"})
    result = await run(spec, {"question": "q"}, gateway, recorder, parent_span_id="span-parent")
    [call] = gateway.calls
    assert (call.provider_kind, call.provider_id, call.agent_id) == ("mock", PROVIDER_ID, AGENT)
    assert call.agent_budget_limit_usd == Decimal("2.5")
    assert call.parent_span_id == result.span_id
    request = call.request
    assert (request.model, request.temperature, request.max_tokens, request.max_retries) == (
        "mock-1",
        0.1,
        300,
        4,
    )
    assert 29 < request.timeout_s <= 30
    assert request.turn == 0
    assert request.provider_options == {"responses": [], "latency_ms": 3}
    assert request.tools == ()
    assert request.json_schema == {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    assert recorder.spans[result.span_id]["parent_id"] == "span-parent"


async def test_the_prompt_has_system_and_user_messages(make_spec, gateway, recorder):
    spec = make_spec(
        system_prompt="You classify tickets.",
        inputs=[{"name": "ticket", "type": "string", "description": "The ticket text"}],
        outputs=[
            {"name": "priority", "type": "enum", "enum_values": ["low", "high"], "description": "Urgency"}
        ],
    )
    gateway.script(AGENT, {"priority": "high"})
    await run(spec, {"ticket": "Server down"}, gateway, recorder)
    system, user = gateway.calls[0].request.messages
    assert system.role == "system"
    assert system.content.startswith("You classify tickets.\n\n")
    assert '- priority (one of "low", "high"): Urgency' in system.content
    assert (user.role, user.content) == ("user", "Inputs:\n\nticket (string): The ticket text\nServer down")


async def test_a_role_adds_instructions_and_parsed_extra_outputs(make_spec, gateway, recorder):
    spec = make_spec().with_role(
        "Pick a specialist.", [{"name": "route_to", "type": "enum", "enum_values": ["a"]}]
    )
    gateway.script(AGENT, {"answer": "x", "route_to": "a"})
    result = await run(spec, {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "x", "route_to": "a"}
    request = gateway.calls[0].request
    assert "Pick a specialist." in request.messages[0].content
    assert request.json_schema["required"] == ["answer", "route_to"]


async def test_spans_and_events_of_a_successful_run(make_spec, gateway, recorder):
    gateway.script(AGENT, {"answer": "42"})
    result = await run(make_spec(name="Oracle"), {"question": "q"}, gateway, recorder)
    span = recorder.spans[result.span_id]
    assert span["kind"] == "agent" and span["name"] == "Oracle" and span["agent_id"] == AGENT
    assert span["status"] == "completed"
    assert (span["input_tokens"], span["output_tokens"], span["cost_usd"]) == (10, 5, Decimal("0.001"))
    assert span["attributes"] == {
        "strategy": "single_shot",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "turns": 1,
    }
    started, completed = recorder.events
    assert started == {
        "type": "agent.started",
        "agent_id": AGENT,
        "data": {"name": "Oracle", "inputs": {"question": "q"}},
    }
    assert completed["type"] == "agent.completed"
    assert completed["data"]["output"] == {"answer": "42"}
    assert completed["data"]["tokens"] == {"input": 10, "output": 5, "total": 15}
    assert completed["data"]["cost_usd"] == 0.001
    recorder.assert_every_span_closed_once()


async def test_a_malformed_answer_is_repaired_on_the_second_try(make_spec, gateway, recorder):
    gateway.script(AGENT, "Sure! The answer is 42.", {"answer": "42"})
    result = await run(make_spec(), {"question": "q"}, gateway, recorder)
    assert result.output == {"answer": "42"}
    first, second = gateway.calls
    assert [first.request.turn, second.request.turn] == [0, 1]
    assert second.request.messages[:2] == first.request.messages
    assistant, repair = second.request.messages[2:]
    assert (assistant.role, assistant.content) == ("assistant", "Sure! The answer is 42.")
    assert repair.role == "user" and "the answer is not valid JSON" in repair.content
    assert second.request.json_schema == first.request.json_schema
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (20, 10, Decimal("0.002"))


async def test_a_wrongly_typed_answer_is_repaired_with_the_field_problem(make_spec, gateway, recorder):
    spec = make_spec(outputs=[{"name": "score", "type": "int"}])
    gateway.script(AGENT, {"score": "high"}, {"score": 7})
    assert (await run(spec, {"question": "q"}, gateway, recorder)).output == {"score": 7}
    assert "score: expected an integer, got a string" in gateway.calls[1].request.messages[-1].content


async def test_a_still_malformed_answer_fails_with_invalid_output(make_spec, gateway, recorder):
    gateway.script(AGENT, "nope", {"other": 1})
    error = await failure(make_spec(), {"question": "q"}, gateway, recorder)
    assert (error.code, error.status) == ("invalid_output", 502)
    assert error.fields == {"answer": "missing"}
    assert len(gateway.calls) == 2
    [span] = recorder.of_kind("agent")
    assert span["status"] == "failed" and span["attributes"]["code"] == "invalid_output"
    assert (span["input_tokens"], span["cost_usd"]) == (20, Decimal("0.002"))
    assert recorder.events[-1] == {
        "type": "agent.failed",
        "agent_id": AGENT,
        "data": {"code": "invalid_output", "message": error.message},
    }


async def test_invalid_input_fails_before_any_call(make_spec, gateway, recorder):
    spec = make_spec(inputs=[{"name": "question", "type": "string"}, {"name": "n", "type": "int"}])
    error = await failure(spec, {"n": "three", "extra": True}, gateway, recorder)
    assert (error.code, error.status) == ("invalid_input", 400)
    assert set(error.fields) == {"question", "n", "extra"}
    assert gateway.calls == []
    assert recorder.of_kind("agent")[0]["status"] == "failed"
    assert recorder.event_types() == ["agent.started", "agent.failed"]


@pytest.mark.parametrize(
    "error, code, status",
    [
        (BudgetExceeded("agent budget reached"), "budget_exceeded", 402),
        (ProviderTimeout("took too long"), "provider_timeout", 504),
        (ProviderError("upstream 500"), "provider_error", 502),
        (ProviderRateLimited("slow down", retry_after=3), "provider_rate_limited", 429),
        (InvalidApiKey("bad key"), "invalid_api_key", 400),
    ],
)
async def test_gateway_errors_keep_their_code_and_status(make_spec, gateway, recorder, error, code, status):
    gateway.script(AGENT, error)
    agent_error = await failure(make_spec(), {"question": "q"}, gateway, recorder)
    assert (agent_error.code, agent_error.status, agent_error.message) == (code, status, error.message)
    assert isinstance(agent_error.__cause__, type(error))
    assert recorder.of_kind("agent")[0]["error"] == error.message
    assert recorder.events[-1]["data"] == {"code": code, "message": error.message}


async def test_the_whole_execution_is_bounded_by_timeout_s(make_spec, gateway, recorder):
    gateway.script(AGENT, hang_forever)
    started = asyncio.get_running_loop().time()
    error = await failure(make_spec(timeout_s=0.05), {"question": "q"}, gateway, recorder)
    assert asyncio.get_running_loop().time() - started < 3  # the call hangs for ever
    assert (error.code, error.status) == ("provider_timeout", 504)
    assert recorder.of_kind("agent")[0]["status"] == "failed"


async def test_cancellation_closes_the_span_as_cancelled_and_propagates(make_spec, gateway, recorder):
    called = asyncio.Event()

    async def hang(call):
        called.set()
        await asyncio.sleep(3600)

    gateway.script(AGENT, hang)
    task = asyncio.create_task(run(make_spec(), {"question": "q"}, gateway, recorder))
    await called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [span] = recorder.of_kind("agent")
    assert span["status"] == "cancelled"
    assert recorder.events[-1]["data"]["code"] == "cancelled"
    recorder.assert_every_span_closed_once()


async def test_a_cancel_while_a_paused_calls_turns_are_read_closes_the_span(
    make_spec, gateway, recorder, monkeypatch
):
    """The span is open (stored) before the turns of a call that paused are read back: a cancel
    landing on that read closes it as cancelled, as one landing on the LLM call does."""
    reading = asyncio.Event()

    async def slow_read(recorder, key):
        reading.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr("agents.runtime.runner.recorded_turns", slow_read)
    task = asyncio.create_task(run(make_spec(), {"question": "q"}, gateway, recorder, key="1.step/0:x#0"))
    await reading.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [span] = recorder.of_kind("agent")
    assert span["status"] == "cancelled"
    recorder.assert_every_span_closed_once()


async def test_an_unexpected_exception_fails_the_span_as_an_internal_error_without_its_text(
    make_spec, gateway, recorder
):
    def explode(call):
        raise RuntimeError("bug at secret-host:5432")

    gateway.script(AGENT, explode)
    with pytest.raises(AgentError) as raised:
        await run(make_spec(), {"question": "q"}, gateway, recorder)
    assert raised.value.code == "internal_error" and isinstance(raised.value.__cause__, RuntimeError)
    error_id = raised.value.fields["error_id"]
    [span] = recorder.of_kind("agent")
    assert span["status"] == "failed" and error_id in span["error"] and "secret-host" not in span["error"]
    data = recorder.events[-1]["data"]
    assert data["code"] == "internal_error" and error_id in data["message"]
    assert "secret" not in data["message"]


async def test_streaming_emits_deltas_in_order_before_completing(make_spec, gateway, recorder):
    gateway.script(AGENT, gateway.answer(text='{"answer": "streamed text"}'))
    result = await run(make_spec(), {"question": "q"}, gateway, recorder, stream=True)
    assert result.output == {"answer": "streamed text"}
    assert len(gateway.streamed) == 1
    types = recorder.event_types()
    assert types[0] == "agent.started" and types[-1] == "agent.completed"
    deltas = [event["data"] for event in recorder.events if event["type"] == "llm.delta"]
    assert len(deltas) > 3 and types[1:-1] == ["llm.delta"] * len(deltas)
    assert "".join(delta["text"] for delta in deltas) == '{"answer": "streamed text"}'
    assert {delta["turn"] for delta in deltas} == {0}


async def test_a_stream_without_a_final_completion_is_a_provider_error(make_spec, recorder):
    class TruncatedStream:
        async def stream(self, call):
            yield Delta("{")

    error = await failure(make_spec(), {"question": "q"}, TruncatedStream(), recorder, stream=True)
    assert (error.code, error.status) == ("provider_error", 502)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def test_the_breaker_opens_after_consecutive_failures_and_recovers_through_half_open(
    make_spec, gateway, recorder
):
    clock = FakeClock()
    breaker = InMemoryCircuitBreaker(failure_threshold=2, cooldown_s=30, clock=clock)
    spec = make_spec()
    gateway.script(AGENT, ProviderError("down"), "garbage", "still garbage", {"answer": "back"})
    assert (
        await failure(spec, {"question": "q"}, gateway, recorder, breaker=breaker)
    ).code == "provider_error"
    assert breaker.state(AGENT) == "closed"
    assert (
        await failure(spec, {"question": "q"}, gateway, recorder, breaker=breaker)
    ).code == "invalid_output"
    assert breaker.state(AGENT) == "open"

    calls_before = len(gateway.calls)
    error = await failure(spec, {"question": "q"}, gateway, recorder, breaker=breaker)
    assert (error.code, error.status) == ("circuit_open", 503)
    assert len(gateway.calls) == calls_before

    clock.now += 30
    assert breaker.state(AGENT) == "half_open"
    assert (await run(spec, {"question": "q"}, gateway, recorder, breaker=breaker)).output == {
        "answer": "back"
    }
    assert breaker.state(AGENT) == "closed"


async def test_invalid_input_and_budget_exceeded_are_not_the_agents_failures(make_spec, gateway, recorder):
    breaker = InMemoryCircuitBreaker(failure_threshold=1)
    gateway.script(AGENT, BudgetExceeded("over"))
    await failure(make_spec(), {"question": 1}, gateway, recorder, breaker=breaker)
    await failure(make_spec(), {"question": "q"}, gateway, recorder, breaker=breaker)
    assert breaker.state(AGENT) == "closed"


async def test_a_timeout_counts_against_the_agent(make_spec, gateway, recorder):
    breaker = InMemoryCircuitBreaker(failure_threshold=1)
    gateway.script(AGENT, hang_forever)
    await failure(make_spec(timeout_s=0.01), {"question": "q"}, gateway, recorder, breaker=breaker)
    assert breaker.state(AGENT) == "open"


async def test_bind_run_agent_gives_patterns_a_run_agent_callable(make_spec, gateway, recorder):
    gateway.script(AGENT, {"answer": "bound"})
    run_bound = bind_run_agent(gateway=gateway, recorder=recorder)
    result = await run_bound(make_spec(), {"question": "q"}, "span-pattern")
    assert result.output == {"answer": "bound"}
    assert recorder.spans[result.span_id]["parent_id"] == "span-pattern"
