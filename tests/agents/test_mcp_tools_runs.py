"""React agents calling MCP tools for real: the fake OpenAI server asks for the tool, the official
client calls the FastMCP fake over streamable HTTP, the result reaches the model, and the call is a
`tool` span between `tool.*` events. Failures (server down, allow-list, another
organization's server) come back to the model as tool errors while the run completes."""

from __future__ import annotations

import json

import pytest

from agents.runs import agent_test_run
from observability.models import AuditLog, Run, RunEvent, Span
from observability.supervisor import RunFailed
from orchestrations.runs import orchestration_execute
from tests.agents.agent_configs import agent_yaml, support_yaml
from tests.agents.factories import make_agent, make_mcp_server
from tests.deployments.helpers import bearer, deploy
from tests.fakes.behaviours import json_answer, tool_calls
from tests.orchestrations.helpers import make_orchestration
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"response": "Order 42 has shipped with DHL.", "priority": "low"}
INQUIRY = {"inquiry": "Where is order 42?"}


def react_agent(organization, *entries: str):
    tools = "tools:\n" + "".join(f"  - {entry}\n" for entry in entries)
    yaml = support_yaml(provider="openai_compatible", model="gpt-4o-mini", strategy="react", tools=tools)
    return make_agent(organization, yaml, name="Order desk")


@pytest.fixture
def provider(member, fake_openai):
    return make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)


@pytest.fixture
def orders_server(member, fake_mcp):
    return make_mcp_server(member.organization, url=fake_mcp.url, headers=fake_mcp.headers, name="Orders")


def tool_messages(request) -> list[dict]:
    return [message for message in request.json["messages"] if message["role"] == "tool"]


def tool_error(message: dict) -> dict:
    return json.loads(message["content"])["error"]


def event_types(run_id: str) -> list[str]:
    return list(RunEvent.objects.filter(run_id=run_id).values_list("type", flat=True))


def test_the_agent_calls_the_tool_and_the_result_reaches_the_model(
    member, provider, orders_server, fake_openai, fake_mcp
):
    agent = react_agent(member.organization, f"{{mcp_server: {orders_server.pk}, tool: lookup_order}}")
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}), json_answer(GOOD)
    )

    result = agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    assert result["output"] == GOOD
    assert [(call.tool, call.arguments) for call in fake_mcp.calls] == [("lookup_order", {"order_id": "42"})]
    assert fake_mcp.calls[0].headers["x-api-key"] == fake_mcp.api_key
    offered = fake_openai.requests[0].json["tools"]
    assert [tool["function"]["name"] for tool in offered] == ["lookup_order"]
    assert offered[0]["function"]["description"] == "The status of an order, by its number."
    assert offered[0]["function"]["parameters"]["required"] == ["order_id"]  # the server's schema
    (answer,) = tool_messages(fake_openai.requests[1])
    assert json.loads(answer["content"]) == {"order_id": "42", "status": "shipped", "carrier": "DHL"}

    span = Span.objects.get(run_id=result["run_id"], kind="tool")
    assert span.status == "completed" and span.name == "lookup_order"
    assert span.attributes["arguments"] == {"order_id": "42"}
    assert span.attributes["mcp_server"] == orders_server.pk and span.attributes["source"] == "mcp"
    assert json.loads(span.attributes["result"])["status"] == "shipped"
    assert span.parent.kind == "agent"
    types = event_types(result["run_id"])
    assert types.index("tool.started") < types.index("tool.completed") < types.index("agent.completed")
    completed = RunEvent.objects.get(run_id=result["run_id"], type="tool.completed")
    assert completed.data["tool"] == "lookup_order" and "shipped" in completed.data["result"]


def test_a_server_that_is_down_is_a_tool_error_and_the_run_completes(
    member, provider, orders_server, fake_openai, fake_mcp
):
    agent = react_agent(member.organization, f"{{mcp_server: {orders_server.pk}, tool: lookup_order}}")
    fake_mcp.stop()
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}), json_answer(GOOD)
    )

    result = agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    assert Run.objects.get(pk=result["run_id"]).status == "completed"
    # Offered all the same (its schema could not be listed), and the call's failure is the answer.
    assert fake_openai.requests[0].json["tools"][0]["function"]["name"] == "lookup_order"
    (answer,) = tool_messages(fake_openai.requests[1])
    assert tool_error(answer)["code"] == "mcp_unreachable"
    span = Span.objects.get(run_id=result["run_id"], kind="tool")
    assert span.status == "failed" and span.attributes["code"] == "mcp_unreachable"
    failed = RunEvent.objects.get(run_id=result["run_id"], type="tool.failed")
    assert failed.data["code"] == "mcp_unreachable" and failed.data["tool"] == "lookup_order"


def test_a_tool_that_fails_on_the_server_is_a_tool_error(
    member, provider, orders_server, fake_openai, fake_mcp
):
    agent = react_agent(member.organization, f"{{mcp_server: {orders_server.pk}, tool: lookup_order}}")
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "7"}}), json_answer(GOOD)
    )

    result = agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    (answer,) = tool_messages(fake_openai.requests[1])
    assert tool_error(answer)["code"] == "tool_error" and "no order 7" in tool_error(answer)["message"]
    assert result["output"] == GOOD


def test_a_tool_taken_off_the_allow_list_after_saving_is_refused(
    member, provider, orders_server, fake_openai, fake_mcp
):
    agent = react_agent(member.organization, f"{{mcp_server: {orders_server.pk}, tool: lookup_order}}")
    orders_server.allowed_tools = ["repeat_text"]
    orders_server.save()
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}), json_answer(GOOD)
    )

    agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    assert fake_mcp.calls == []
    (answer,) = tool_messages(fake_openai.requests[1])
    assert tool_error(answer)["code"] == "tool_not_allowed"


def test_another_organizations_server_is_never_reached(
    member, provider, other_org_owner, fake_openai, fake_mcp
):
    theirs = make_mcp_server(other_org_owner.organization, url=fake_mcp.url, headers=fake_mcp.headers)
    # Stored directly: the API refuses such a config (tests/agents/test_mcp_tools_api.py).
    agent = react_agent(member.organization, f"{{mcp_server: {theirs.pk}, tool: lookup_order}}")
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}), json_answer(GOOD)
    )

    agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    assert fake_mcp.calls == [] and fake_mcp.rejected == 0
    (answer,) = tool_messages(fake_openai.requests[1])
    assert tool_error(answer)["code"] == "not_found"


def test_the_servers_secrets_stay_out_of_spans_events_and_audit_rows(
    member, provider, orders_server, fake_openai, fake_mcp
):
    agent = react_agent(member.organization, f"{{mcp_server: {orders_server.pk}, tool: repeat_text}}")
    # The model echoes the key back through the tool (as a leaky server could): stored redacted.
    arguments = {"text": f"key={fake_mcp.api_key} ", "times": 2}
    fake_openai.enqueue(tool_calls({"name": "repeat_text", "arguments": arguments}), json_answer(GOOD))

    result = agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    assert fake_mcp.calls[0].arguments == arguments  # the call itself was made as asked
    span = Span.objects.get(run_id=result["run_id"], kind="tool")
    stored = [
        json.dumps(span.attributes),
        *(json.dumps(event.data) for event in RunEvent.objects.filter(run_id=result["run_id"])),
        *(json.dumps(row.changes) for row in AuditLog.objects.all()),
    ]
    assert all(fake_mcp.api_key not in text for text in stored)
    assert span.attributes["result"] == "key=[redacted] key=[redacted] "


def test_a_result_over_the_size_cap_is_a_tool_error(
    member, provider, orders_server, fake_openai, fake_mcp, settings
):
    settings.MCP_MAX_RESULT_BYTES = 1000
    agent = react_agent(member.organization, f"{{mcp_server: {orders_server.pk}, tool: repeat_text}}")
    fake_openai.enqueue(
        tool_calls({"name": "repeat_text", "arguments": {"text": "abcd", "times": 400}}), json_answer(GOOD)
    )

    result = agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    (answer,) = tool_messages(fake_openai.requests[1])
    assert tool_error(answer)["code"] == "mcp_result_too_large"
    assert result["output"] == GOOD


def test_a_slow_server_hits_the_call_deadline_as_a_tool_error(
    member, provider, orders_server, fake_openai, fake_mcp, settings
):
    settings.MCP_CALL_TIMEOUT_S = 0.5
    agent = react_agent(member.organization, f"{{mcp_server: {orders_server.pk}, tool: lookup_order}}")
    fake_mcp.delay_s = 2
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}), json_answer(GOOD)
    )

    result = agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    (answer,) = tool_messages(fake_openai.requests[1])
    assert tool_error(answer)["code"] == "mcp_timeout"
    assert Run.objects.get(pk=result["run_id"]).status == "completed"


def test_a_run_lists_each_server_once_for_all_its_agents(
    member, provider, orders_server, fake_openai, fake_mcp
):
    entry = f"{{mcp_server: {orders_server.pk}, tool: lookup_order}}"
    helper = react_agent(member.organization, entry)
    helper.name = "Order helper"
    helper.save()
    front = react_agent(member.organization, f"{{agent_id: {helper.pk}}}", entry)
    fake_openai.enqueue(
        tool_calls({"name": "order_helper", "arguments": {"inquiry": "order 42?"}}),  # the front desk
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}),  # the helper
        json_answer(GOOD),  # the helper answers
        json_answer(GOOD),  # the front desk answers
    )

    result = agent_test_run(user=member, agent=front, inputs=INQUIRY)

    assert result["output"] == GOOD
    assert [call.tool for call in fake_mcp.calls] == ["lookup_order"]
    assert fake_mcp.sessions == 2  # one listing for both agents, one call


def test_the_agents_own_deadline_ends_the_run_during_a_slow_call(
    member, provider, orders_server, fake_openai, fake_mcp
):
    tools = f"tools:\n  - {{mcp_server: {orders_server.pk}, tool: lookup_order}}\n"
    yaml = support_yaml(provider="openai_compatible", model="gpt-4o-mini", strategy="react", tools=tools)
    agent = make_agent(member.organization, yaml.replace("timeout_s: 20", "timeout_s: 1.5"))
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}), json_answer(GOOD)
    )
    fake_mcp.delay_s = 5  # within the MCP deadline (30 s), past the agent's

    with pytest.raises(RunFailed) as failed:
        agent_test_run(user=member, agent=agent, inputs=INQUIRY)

    assert failed.value.code == "provider_timeout"  # the run's limit, not a tool error
    run = Run.objects.get()
    assert run.status == "failed"
    assert Span.objects.get(run=run, kind="tool").status == "cancelled"


def test_a_deployed_agent_calls_its_mcp_tools(admin_user, fake_openai, fake_mcp, client):
    make_provider_config(admin_user.organization, api_base_url=fake_openai.base_url, is_default=True)
    server = make_mcp_server(admin_user.organization, url=fake_mcp.url, headers=fake_mcp.headers)
    agent = react_agent(admin_user.organization, f"{{mcp_server: {server.pk}, tool: lookup_order}}")
    _, key = deploy(admin_user, agent, name="order-desk")
    fake_openai.enqueue(
        tool_calls({"name": "lookup_order", "arguments": {"order_id": "42"}}), json_answer(GOOD)
    )

    response = client.post(
        "/workflows/order-desk/execute",
        {"inputs": INQUIRY},
        content_type="application/json",
        headers=bearer(key),
    )

    assert response.status_code == 200, response.content
    assert response.json()["outputs"] == GOOD
    assert [call.tool for call in fake_mcp.calls] == ["lookup_order"]
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.kind == "deployment" and Span.objects.get(run=run, kind="tool").status == "completed"


def test_an_orchestrations_agent_calls_its_mcp_tool_on_the_mock_provider(member, orders_server, fake_mcp):
    fields = {
        "inputs": [{"name": "text", "type": "string"}],
        "outputs": [{"name": "answer", "type": "string"}],
    }
    lookup = {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "42"}}]}
    clerk = make_agent(
        member.organization,
        agent_yaml(
            signature={"system_prompt": "You look orders up.", **fields},
            provider={
                "provider": "mock",
                "model": "mock-1",
                "responses": [lookup, {"response": {"answer": "42 shipped"}}],
            },
            config={"strategy": "react"},
            tools=[{"mcp_server": orders_server.pk, "tool": "lookup_order"}],
        ),
        name="Clerk",
    )
    writer = make_agent(
        member.organization,
        agent_yaml(
            signature={"system_prompt": "You write replies.", **fields},
            provider={
                "provider": "mock",
                "model": "mock-1",
                "responses": [{"response": {"answer": "Dear customer"}}],
            },
        ),
        name="Writer",
    )
    orchestration = make_orchestration(member.organization, "sequential", [clerk, writer])

    body = orchestration_execute(user=member, orchestration=orchestration, inputs={"text": "Order 42?"})

    assert body["output"]["steps"][0] == {"agent": "Clerk", "output": {"answer": "42 shipped"}}
    assert body["output"]["output"] == {"answer": "Dear customer"}
    assert [(call.tool, call.arguments) for call in fake_mcp.calls] == [("lookup_order", {"order_id": "42"})]
    assert Span.objects.get(run_id=body["run_id"], kind="tool").status == "completed"
