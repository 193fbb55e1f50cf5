"""Budgets fail closed: a model without a price cannot be called under a budget limit (it would
reserve and settle $0, so spend without limit), and prices come from genai-prices' bundled data
with pricing.yaml and the provider config's overrides on top. Driven through `POST
/api/agents/{id}/test` against the fake OpenAI-compatible server."""

from __future__ import annotations

from decimal import Decimal

import genai_prices
import pytest

from observability.models import Span
from providers.budgets import spent_this_month
from providers.models import BudgetCounter
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.conftest import client_for
from tests.fakes.behaviours import json_answer
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = {"response": "We will refund you.", "priority": "high"}
UNPRICED = "house-model-7"


@pytest.fixture
def fake_server(fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    fake_openai.enqueue(json_answer(ANSWER))
    return fake_openai


def agent_test(member, *, model, provider="openai_compatible", agent_budget=None):
    extra = f"  budget_limit_usd: {agent_budget}" if agent_budget is not None else ""
    agent = make_agent(member.organization, support_yaml(provider=provider, model=model, config_extra=extra))
    response = client_for(member).post(
        f"/api/agents/{agent.pk}/test", {"input": {"inquiry": "Refund?"}}, "json"
    )
    return agent, response


def llm_span(response) -> Span:
    return Span.objects.get(run_id=response.json()["run_id"], kind="llm")


def catalog_cost(model: str, span: Span) -> Decimal:
    """What genai-prices itself says the span's tokens cost."""
    usage = genai_prices.Usage(input_tokens=span.input_tokens, output_tokens=span.output_tokens)
    return genai_prices.calc_price(usage, model, provider_id="openai").total_price


def test_an_agent_budget_refuses_a_model_without_a_price_before_any_request(member, fake_server):
    make_provider_config(member.organization, api_base_url=fake_server.base_url, is_default=True)

    agent, response = agent_test(member, model=UNPRICED, agent_budget=5)

    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert error["code"] == "model_not_priced"
    assert UNPRICED in error["message"] and f"agent {agent.pk}" in error["message"]
    assert "pricing_overrides" in error["message"] and "pricing.yaml" in error["message"]
    assert fake_server.requests == []
    assert not BudgetCounter.objects.filter(reserved_usd__gt=0).exists()
    assert not Span.objects.filter(kind="llm").exists()


def test_a_provider_budget_refuses_a_model_without_a_price(member, fake_server):
    config = make_provider_config(
        member.organization, api_base_url=fake_server.base_url, is_default=True, budget="100"
    )

    _, response = agent_test(member, model=UNPRICED)

    assert response.status_code == 402, response.content
    assert response.json()["error"]["code"] == "model_not_priced"
    assert f"provider config '{config.name}'" in response.json()["error"]["message"]
    assert fake_server.requests == []


def test_without_a_budget_limit_an_unpriced_model_goes_through_recorded_at_zero(member, fake_server):
    config = make_provider_config(member.organization, api_base_url=fake_server.base_url, is_default=True)

    agent, response = agent_test(member, model=UNPRICED)

    assert response.status_code == 200, response.content
    assert response.json()["output"] == ANSWER and response.json()["cost"] == 0
    assert fake_server.requests[-1].json["model"] == UNPRICED
    span = llm_span(response)
    assert span.cost_usd == 0 and span.input_tokens > 0
    assert any(UNPRICED in warning and "no price" in warning for warning in span.attributes["warnings"])
    assert spent_this_month(config.pk) == 0 and spent_this_month(agent.pk) == 0


def test_o1_pro_is_priced_as_itself_not_as_o1(member, fake_server):
    config = make_provider_config(
        member.organization, provider="openai", api_base_url=fake_server.base_url, is_default=True
    )

    agent, response = agent_test(member, model="o1-pro", provider="openai", agent_budget=1000)

    assert response.status_code == 200, response.content
    span = llm_span(response)
    assert span.cost_usd == catalog_cost("o1-pro", span) > 0
    assert span.cost_usd >= 10 * catalog_cost("o1", span)  # o1-pro lists at ten times o1's rates
    assert spent_this_month(agent.pk) == span.cost_usd == spent_this_month(config.pk)


def test_a_model_only_genai_prices_knows_gets_its_price(member, fake_server):
    make_provider_config(member.organization, api_base_url=fake_server.base_url, is_default=True)

    _, response = agent_test(member, model="gpt-5", agent_budget=1000)

    assert response.status_code == 200, response.content
    span = llm_span(response)
    assert span.cost_usd == catalog_cost("gpt-5", span) > 0
    assert Decimal(str(response.json()["cost"])) == span.cost_usd


def test_a_provider_override_wins_over_genai_prices_and_prices_an_unknown_model(member, fake_server):
    overrides = {"gpt-5": {"input": 100, "output": 1000}, UNPRICED: {"input": 1, "output": 2}}
    make_provider_config(
        member.organization, api_base_url=fake_server.base_url, is_default=True, pricing_overrides=overrides
    )

    _, overridden = agent_test(member, model="gpt-5", agent_budget=1000)
    fake_server.enqueue(json_answer(ANSWER))
    _, house = agent_test(member, model=UNPRICED, agent_budget=1000)

    span = llm_span(overridden)
    assert span.cost_usd == (span.input_tokens * 100 + span.output_tokens * 1000) / Decimal(1_000_000)
    assert span.cost_usd != catalog_cost("gpt-5", span)
    assert house.status_code == 200, house.content
    span = llm_span(house)
    assert span.cost_usd == (span.input_tokens * 1 + span.output_tokens * 2) / Decimal(1_000_000) > 0
