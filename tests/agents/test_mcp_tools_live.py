"""Our own deployments' MCP endpoints as tool sources: an agent of one organization calls another
organization's deployed agent through `/mcp/{name}` on a real daphne server, its deployment key as
the bearer header of the MCP server entry."""

from __future__ import annotations

import json

import pytest

from agents.runs import agent_test_run
from observability.models import Run, Span
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent, make_mcp_server
from tests.deployments.helpers import GOOD, answering_agent, bearer, deploy
from tests.fakes.behaviours import json_answer, tool_calls
from tests.providers.factories import make_provider_config

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

ANSWER = {"response": "The billing team says: refund today.", "priority": "high"}


def test_an_agent_calls_another_teams_deployed_agent_over_mcp(
    daphne_server, member, other_org_owner, fake_openai, settings
):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    billing = answering_agent(other_org_owner.organization, name="Billing")
    _, key = deploy(other_org_owner, billing, name="billing-desk")
    server = make_mcp_server(
        member.organization, url=f"{daphne_server.url}/mcp/billing-desk", headers=bearer(key), name="Billing"
    )
    make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)
    tools = f"tools:\n  - {{mcp_server: {server.pk}, tool: billing-desk}}\n"
    yaml = support_yaml(provider="openai_compatible", model="gpt-4o-mini", strategy="react", tools=tools)
    agent = make_agent(member.organization, yaml, name="Front desk")
    fake_openai.enqueue(
        tool_calls({"name": "billing-desk", "arguments": {"inquiry": "Where is my refund?"}}),
        json_answer(ANSWER),
    )

    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Where is my refund?"})

    assert result["output"] == ANSWER
    offered = fake_openai.requests[0].json["tools"][0]["function"]
    assert offered["name"] == "billing-desk" and offered["description"] == "Answers customers"
    assert set(offered["parameters"]["properties"]) == {"inquiry"}  # the deployment's signature
    (answer,) = [m for m in fake_openai.requests[1].json["messages"] if m["role"] == "tool"]
    assert json.loads(answer["content"]) == GOOD
    # The deployed agent ran as the other organization's deployment run; ours holds the tool span.
    deployment_run = Run.objects.get(kind="deployment")
    assert deployment_run.organization_id == other_org_owner.organization_id
    assert deployment_run.status == "completed" and deployment_run.output == GOOD
    span = Span.objects.get(run_id=result["run_id"], kind="tool")
    assert span.status == "completed" and span.organization_id == member.organization_id
    assert key not in json.dumps(span.attributes)


def test_a_stopped_deployment_is_a_tool_error(daphne_server, member, fake_openai, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)
    server = make_mcp_server(
        member.organization, url=f"{daphne_server.url}/mcp/nobody-home", headers=bearer("not-a-key")
    )
    tools = f"tools:\n  - {{mcp_server: {server.pk}, tool: nobody-home}}\n"
    yaml = support_yaml(provider="openai_compatible", model="gpt-4o-mini", strategy="react", tools=tools)
    agent = make_agent(member.organization, yaml)
    fake_openai.enqueue(tool_calls({"name": "nobody-home", "arguments": {}}), json_answer(ANSWER))

    result = agent_test_run(user=member, agent=agent, inputs={"inquiry": "Hello?"})

    (answer,) = [m for m in fake_openai.requests[1].json["messages"] if m["role"] == "tool"]
    error = json.loads(answer["content"])["error"]
    assert error["code"] == "mcp_http_error" and "401" in error["message"]
    assert result["output"] == ANSWER
