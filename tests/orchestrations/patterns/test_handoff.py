import pytest

from agents.runtime.types import AgentError
from tests.orchestrations.patterns.conftest import agent, fail

TIERS = [agent("bot", name="Bot"), agent("agent", name="Agent"), agent("expert", name="Expert")]


async def test_handoff_escalates_from_tier_one_to_tier_two(orchestra):
    script = {
        "bot": {"answer": "I do not know", "escalate": True},
        "agent": {"answer": "Reset your router.", "escalate": False},
    }

    result = await orchestra.run("handoff", TIERS, script)

    assert result.output == {
        "tier": 2,
        "agent": "Agent",
        "handled": True,
        "output": {"answer": "Reset your router.", "escalate": False},
        "escalations": [{"tier": 1, "agent": "Bot", "reason": "escalate"}],
    }
    assert result.agents_executed == ["bot", "agent"]
    assert orchestra.recorder.steps() == [
        {"step": "escalate", "tier": 1, "agent": "Bot", "reason": "escalate"},
        {"step": "handled", "tier": 2, "agent": "Agent", "handled": True},
    ]
    assert orchestra.call_steps() == [("bot", "handoff.tier"), ("agent", "handoff.tier")]


async def test_handoff_escalates_when_confidence_is_below_the_minimum(orchestra):
    script = {"bot": {"answer": "maybe", "confidence": 0.4}, "agent": {"answer": "sure", "confidence": 0.9}}
    config = {"confidence_field": "confidence", "min_confidence": 0.7}

    result = await orchestra.run("handoff", TIERS, script, config=config)

    assert (result.output["tier"], result.output["escalations"][0]["reason"]) == (2, "low_confidence")
    assert [f["name"] for f in orchestra.agents.calls[0].spec.extra_outputs] == ["escalate", "confidence"]


async def test_handoff_last_tier_answers_even_when_it_would_escalate(orchestra):
    script = {tier.agent_id: {"answer": "no idea", "escalate": True} for tier in TIERS}

    result = await orchestra.run("handoff", TIERS, script)

    assert (result.output["tier"], result.output["handled"]) == (3, False)
    assert len(result.output["escalations"]) == 2


async def test_handoff_tier_failure_fails_the_run_even_when_errors_are_tolerated(orchestra):
    with pytest.raises(AgentError):
        await orchestra.run("handoff", TIERS, {"bot": fail()}, config={"on_agent_error": "continue"})

    assert orchestra.agents.ids() == ["bot"]
