"""A react agent whose model (the fake OpenAI server) asks for more tool calls in one turn than the
server allows runs only the allowed ones; the others are answered with `tool_call_limit` errors."""

from __future__ import annotations

import json

import pytest

from agents.runs import agent_test_run
from agents.runtime import react
from observability.models import Span
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.fakes.behaviours import json_answer, tool_calls
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"response": "Order 42 shipped.", "priority": "low"}


def test_a_model_asking_for_more_tool_calls_than_the_cap_gets_them_refused(member, fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    cap = react.tool_call_limits.per_turn  # the server's default (STUDIO_REACT_MAX_TOOL_CALLS_PER_TURN)
    assert cap == settings.REACT_MAX_TOOL_CALLS_PER_TURN == 8
    make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)
    lookup = make_agent(
        member.organization,
        support_yaml(responses=[{"response": GOOD}]),
        name="Order lookup",
        description="Looks up orders",
    )
    agent = make_agent(
        member.organization,
        support_yaml(
            provider="openai_compatible",
            model="gpt-4o-mini",
            strategy="react",
            tools=f"tools:\n  - {{agent_id: {lookup.pk}}}",
        ),
    )
    asked = [{"name": "order_lookup", "arguments": {"inquiry": f"order {n}"}} for n in range(cap + 12)]
    fake_openai.enqueue(tool_calls(*asked), json_answer(GOOD))

    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Where are my orders?"})

    assert result["output"] == GOOD
    assert Span.objects.filter(run_id=result["run_id"], kind="tool").count() == cap
    tool_messages = [m for m in fake_openai.requests[-1].json["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == cap + 12  # every call answered, so the provider accepts the turn
    refused = [json.loads(m["content"]).get("error", {}).get("code") for m in tool_messages[cap:]]
    assert refused == ["tool_call_limit"] * 12
