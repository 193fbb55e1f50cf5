import pytest

from agents.runtime.types import AgentError
from orchestrations.patterns.base import OrchestrationError
from tests.orchestrations.patterns.conftest import agent, fail

ROUTER = agent("router", name="Router", outputs=[])
TECH = agent("tech", name="Tech", description="Fixes software problems")
BILLING = agent("billing", name="Billing", description="Answers questions about invoices")


async def test_router_routes_to_the_specialist_the_router_names(orchestra):
    script = {"router": {"route_to": "Billing"}, "billing": {"answer": "Your invoice is paid."}}

    result = await orchestra.run("router", [ROUTER, TECH, BILLING], script)

    assert result.output == {"specialist": "Billing", "output": {"answer": "Your invoice is paid."}}
    assert result.agents_executed == ["router", "billing"]
    assert orchestra.call_steps() == [("router", "router.route"), ("billing", "router.specialist")]
    assert orchestra.recorder.steps() == [
        {"step": "route", "specialist": "Billing", "requested": "Billing", "fallback": False}
    ]


async def test_router_is_asked_for_a_structured_choice_among_the_specialists(orchestra):
    await orchestra.run("router", [ROUTER, TECH, BILLING], {"router": {"route_to": "Tech"}})

    spec = orchestra.calls_of("router")[0].spec
    (route_to,) = spec.extra_outputs
    assert route_to["name"] == "route_to"
    assert (route_to["type"], route_to["enum_values"]) == ("enum", ["Tech", "Billing"])
    assert "- Tech: Fixes software problems" in spec.role_instructions
    assert "- Billing: Answers questions about invoices" in spec.role_instructions
    assert orchestra.calls_of("tech")[0].spec.role_instructions == ""


async def test_router_falls_back_to_the_first_specialist_on_an_invalid_pick(orchestra):
    result = await orchestra.run("router", [ROUTER, TECH, BILLING], {"router": {"route_to": "Legal"}})

    assert result.output["specialist"] == "Tech"
    assert orchestra.recorder.steps() == [
        {"step": "route", "specialist": "Tech", "requested": "Legal", "fallback": True}
    ]


async def test_router_with_fallback_fail_rejects_an_invalid_pick(orchestra):
    with pytest.raises(OrchestrationError) as failure:
        await orchestra.run("router", [ROUTER, TECH, BILLING], {"router": {}}, config={"fallback": "fail"})

    assert (failure.value.code, failure.value.status) == ("invalid_route", 502)
    assert orchestra.agents.ids() == ["router"]


async def test_router_failure_fails_the_run_even_when_errors_are_tolerated(orchestra):
    with pytest.raises(AgentError) as failure:
        await orchestra.run(
            "router",
            [ROUTER, TECH, BILLING],
            {"router": fail("router down")},
            config={"on_agent_error": "continue"},
        )

    assert failure.value.message == "router down"
    assert orchestra.agents.ids() == ["router"]
