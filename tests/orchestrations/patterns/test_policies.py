"""Cross-cutting rules: error policy, timeout, cost cap, cancellation."""

import asyncio
import time
from decimal import Decimal

import pytest

from agents.runtime.types import AgentError
from agents.runtime.validation import ConfigError
from orchestrations.patterns.base import OrchestrationError
from tests.orchestrations.patterns.conftest import Reply, agent, fail

TRIO = [agent("a"), agent("b"), agent("c")]


def statuses(orchestra, name):
    return [span["status"] for span in orchestra.recorder.spans.values() if span["name"] == name]


async def test_fail_policy_raises_the_first_failure_and_cancels_the_calls_in_flight(orchestra):
    script = {"a": Reply({"answer": "slow"}, sleep=5), "b": fail("b broke", sleep=0.05), "c": Reply(sleep=5)}

    started = time.perf_counter()
    with pytest.raises(AgentError) as failure:
        await orchestra.run("parallel", TRIO, script)

    assert time.perf_counter() - started < 3  # the slow calls would take 5 s
    assert (failure.value.code, failure.value.message) == ("provider_error", "b broke")
    assert sorted(orchestra.agents.cancelled) == ["a", "c"]
    assert statuses(orchestra, "parallel.fan_out") == ["failed"]


async def test_continue_policy_records_failures_and_keeps_the_other_outputs(orchestra):
    script = {"b": fail("b broke")}

    result = await orchestra.run("parallel", TRIO, script, config={"on_agent_error": "continue"})

    assert result.output == {
        "outputs": {"a": {"answer": "a says"}, "c": {"answer": "c says"}},
        "errors": {"b": "b broke"},
    }
    assert result.agents_executed == ["a", "b", "c"]
    assert result.cost_usd == Decimal("0.02")


async def test_continue_policy_fails_when_every_agent_of_a_step_failed(orchestra):
    script = {spec.agent_id: fail() for spec in TRIO}

    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("parallel", TRIO, script, config={"on_agent_error": "continue"})

    assert (failure.value.code, failure.value.status) == ("all_agents_failed", 502)


async def test_timeout_covers_the_whole_pattern_and_cancels_the_calls_in_flight(orchestra):
    script = {"a": Reply(sleep=0.06), "b": Reply(sleep=5)}

    started = time.perf_counter()
    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("sequential", [agent("a"), agent("b")], script, config={"timeout_s": 0.1})

    assert time.perf_counter() - started < 3  # the slow calls would take 5 s
    assert (failure.value.code, failure.value.status) == ("orchestration_timeout", 504)
    assert orchestra.agents.cancelled == ["b"]
    assert statuses(orchestra, "sequential.step") == ["completed", "cancelled"]


async def test_cost_cap_stops_launching_agents_once_the_cost_passes_it(orchestra):
    agents = [agent("a"), agent("b"), agent("c")]
    script = {spec.agent_id: Reply(cost="0.60") for spec in agents}

    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("sequential", agents, script, config={"max_total_cost_usd": 1.0})

    assert (failure.value.code, failure.value.status) == ("cost_limit_exceeded", 402)
    assert orchestra.agents.ids() == ["a", "b"]


async def test_cost_cap_passed_by_concurrent_calls_cancels_the_ones_still_running(orchestra):
    script = {
        "a": Reply(cost="0.60"),
        "b": Reply(cost="0.60", sleep=0.05),
        "c": Reply(cost="0.60", sleep=5),
    }

    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("parallel", TRIO, script, config={"max_total_cost_usd": 1.0})

    assert failure.value.code == "cost_limit_exceeded"
    assert orchestra.agents.cancelled == ["c"]


async def test_cost_cap_allows_spending_up_to_the_limit(orchestra):
    script = {spec.agent_id: Reply(cost="0.40") for spec in TRIO}

    result = await orchestra.run("sequential", TRIO, script, config={"max_total_cost_usd": 1.2})

    assert result.cost_usd == Decimal("1.20")


async def test_cost_cap_is_not_tolerated_by_the_continue_policy(orchestra):
    script = {spec.agent_id: Reply(cost="0.60") for spec in TRIO}
    config = {"max_total_cost_usd": 1.0, "max_concurrency": 1, "on_agent_error": "continue"}

    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("parallel", TRIO, script, config=config)

    assert failure.value.code == "cost_limit_exceeded"
    assert orchestra.agents.ids() == ["a", "b"]


async def test_cancelling_the_pattern_cancels_the_agent_calls_in_flight(orchestra):
    script = {spec.agent_id: Reply(sleep=5) for spec in TRIO}
    task = asyncio.create_task(orchestra.run("parallel", TRIO, script))
    await asyncio.sleep(0.05)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert sorted(orchestra.agents.cancelled) == ["a", "b", "c"]
    assert statuses(orchestra, "parallel.fan_out") == ["cancelled"]


async def test_run_pattern_rejects_an_invalid_config_before_running_any_agent(orchestra):
    with pytest.raises(ConfigError):
        await orchestra.run("parallel", TRIO, config={"max_concurrency": 0})

    assert orchestra.agents.calls == []


async def test_step_spans_carry_the_tokens_and_cost_of_their_agents(orchestra):
    await orchestra.run("parallel", TRIO)

    (span,) = [s for s in orchestra.recorder.spans.values() if s["name"] == "parallel.fan_out"]
    assert (span["status"], span["input_tokens"], span["cost_usd"]) == ("completed", 30, Decimal("0.03"))
