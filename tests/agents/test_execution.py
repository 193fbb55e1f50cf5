"""Agents executed for real: runtime + gateway + mock provider / fake provider servers + ledger."""

from __future__ import annotations

import pytest

from agents.runs import agent_test_run
from agents.runtime.types import AgentError
from observability.models import Run, RunEvent, Span
from observability.supervisor import RunFailed
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.fakes.behaviours import answer, json_answer
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"response": "We will refund you.", "priority": "high"}


def test_a_mock_agent_test_run_returns_output_usage_and_a_recorded_trace(member):
    agent = make_agent(member.organization, support_yaml(responses=[{"response": GOOD}]))
    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Where is my refund?"})
    assert result["output"] == GOOD
    assert result["tokens"]["total"] == result["tokens"]["input"] + result["tokens"]["output"] > 0
    assert result["cost"] > 0 and result["execution_time_ms"] >= 0
    run = Run.objects.get(pk=result["run_id"])
    assert run.kind == "agent_test" and run.status == "completed" and run.trace_id == result["trace_id"]
    assert run.agent_id == agent.pk and run.user_id == member.pk
    spans = {span.kind: span for span in Span.objects.filter(run=run)}
    assert spans["agent"].parent_id == spans["run"].pk and spans["llm"].parent_id == spans["agent"].pk
    assert float(spans["llm"].cost_usd) == result["cost"]
    events = list(RunEvent.objects.filter(run=run).values_list("type", "seq"))
    assert [t for t, _ in events] == ["run.started", "agent.started", "agent.completed", "run.completed"]
    assert [s for _, s in events] == [1, 2, 3, 4]


def test_structured_output_through_the_fake_openai_server(member, fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)
    agent = make_agent(member.organization, support_yaml(provider="openai_compatible", model="gpt-4o-mini"))
    fake_openai.enqueue(json_answer(GOOD))
    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Refund?"})
    assert result["output"] == GOOD
    sent = fake_openai.requests[-1].json
    assert sent["response_format"]["type"] == "json_schema"
    assert set(sent["response_format"]["json_schema"]["schema"]["properties"]) >= {"response", "priority"}


def test_structured_output_through_the_fake_anthropic_server(member, fake_anthropic, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    make_provider_config(
        member.organization, provider="anthropic", api_base_url=fake_anthropic.url, is_default=True
    )
    agent = make_agent(member.organization, support_yaml(provider="anthropic", model="claude-haiku-4-5"))
    fake_anthropic.enqueue(json_answer(GOOD))
    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Refund?"})
    assert result["output"] == GOOD and result["cost"] > 0


def test_a_malformed_answer_is_repaired_on_the_second_try(member, fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)
    agent = make_agent(member.organization, support_yaml(provider="openai_compatible", model="gpt-4o-mini"))
    fake_openai.enqueue(answer("not json at all"), json_answer(GOOD))
    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Refund?"})
    assert result["output"] == GOOD
    assert Span.objects.filter(run_id=result["run_id"], kind="llm").count() == 2


def test_a_still_malformed_answer_fails_the_run_cleanly(member):
    bad = {"response": {"response": "ok", "priority": "urgent"}}
    agent = make_agent(member.organization, support_yaml(responses=[bad, bad]))
    with pytest.raises(RunFailed) as failed:
        agent_test_run(user=member, agent=agent, inputs={"inquiry": "Refund?"})
    assert failed.value.code == "invalid_output" and failed.value.status == 502
    run = Run.objects.get(pk=failed.value.run.pk)
    assert run.status == "failed" and run.error["code"] == "invalid_output"
    assert run.input_tokens > 0  # the two calls were paid for
    assert RunEvent.objects.filter(run=run).last().type == "run.failed"


def test_missing_required_input_is_refused_before_any_run(member):
    agent = make_agent(member.organization, support_yaml())
    with pytest.raises(AgentError) as refused:
        agent_test_run(user=member, agent=agent, inputs={"question": "hi"})
    assert refused.value.code == "invalid_input" and refused.value.status == 400
    assert "inquiry" in refused.value.fields
    assert not Run.objects.exists()


def test_budget_exceeded_fails_the_run_with_402_and_spends_nothing(member):
    yaml_text = support_yaml(config_extra="  budget_limit_usd: 0.0000001")
    agent = make_agent(member.organization, yaml_text)
    with pytest.raises(RunFailed) as failed:
        agent_test_run(user=member, agent=agent, inputs={"inquiry": "Refund?"})
    assert failed.value.code == "budget_exceeded" and failed.value.status == 402
    run = Run.objects.get(pk=failed.value.run.pk)
    assert run.status == "failed" and run.cost_usd == 0
    assert not Span.objects.filter(run=run, kind="llm").exists()


def test_react_uses_another_agent_as_a_tool_with_child_spans(member):
    lookup = make_agent(
        member.organization,
        support_yaml(responses=[{"response": {"response": "Order 42 shipped", "priority": "low"}}]),
        name="Order lookup",
        description="Looks up orders",
    )
    tools = f"tools:\n  - {{agent_id: {lookup.pk}}}"
    responses = [
        {"tool_calls": [{"name": "order_lookup", "arguments": {"inquiry": "order 42"}}]},
        {"response": GOOD},
    ]
    agent = make_agent(member.organization, support_yaml(responses=responses, strategy="react", tools=tools))
    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Where is order 42?"})
    assert result["output"] == GOOD
    tool_span = Span.objects.get(run_id=result["run_id"], kind="tool")
    nested = Span.objects.get(run_id=result["run_id"], kind="agent", parent=tool_span)
    assert nested.agent_id == lookup.pk
    assert Span.objects.filter(run_id=result["run_id"], kind="llm").count() == 3


def test_the_circuit_breaker_opens_after_repeated_failures(member):
    failing = [{"error": "provider_error", "message": "upstream down"}]
    agent = make_agent(member.organization, support_yaml(responses=failing))
    for _ in range(5):
        with pytest.raises(RunFailed) as failed:
            agent_test_run(user=member, agent=agent, inputs={"inquiry": "x"})
        assert failed.value.code == "provider_error"
    with pytest.raises(RunFailed) as refused:
        agent_test_run(user=member, agent=agent, inputs={"inquiry": "x"})
    assert refused.value.code == "circuit_open" and refused.value.status == 503
    assert not Span.objects.filter(run=refused.value.run, kind="llm").exists()


def test_the_test_endpoint_runs_the_agent_for_members_only(member, viewer, other_org_owner):
    from tests.conftest import client_for

    agent = make_agent(member.organization, support_yaml(responses=[{"response": GOOD}]))
    url = f"/api/agents/{agent.pk}/test"
    response = client_for(member).post(url, {"input": {"inquiry": "Refund?"}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["output"] == GOOD and body["run_id"].startswith("run-") and body["cost"] > 0
    assert set(body["tokens"]) == {"input", "output", "total"}
    assert client_for(viewer).post(url, {"input": {"inquiry": "x"}}, format="json").status_code == 403
    assert (
        client_for(other_org_owner).post(url, {"input": {"inquiry": "x"}}, format="json").status_code == 404
    )


def test_the_test_endpoint_reports_bad_input_and_budget_in_the_error_envelope(member):
    from tests.conftest import client_for

    client = client_for(member)
    agent = make_agent(member.organization, support_yaml(config_extra="  budget_limit_usd: 0.0000001"))
    bad = client.post(f"/api/agents/{agent.pk}/test", {"input": {"wrong": 1}}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
    assert "inquiry" in bad.json()["error"]["fields"]
    assert client.post(f"/api/agents/{agent.pk}/test", {"input": [1]}, format="json").status_code == 400
    over = client.post(f"/api/agents/{agent.pk}/test", {"input": {"inquiry": "x"}}, format="json")
    assert over.status_code == 402
    error = over.json()["error"]
    assert error["code"] == "budget_exceeded" and error["fields"]["run_id"].startswith("run-")
    assert Run.objects.get(pk=error["fields"]["run_id"]).status == "failed"
