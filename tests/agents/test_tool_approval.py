"""MCP tools with `requires_approval`: a react agent's call to one pauses the run (`waiting`, the
request answered 202) until a person decides; approved, the tool is called exactly once (counted on
the real fake MCP server) and its result reaches the model; rejected, the model reads a tool error
with the comment; overdue, the policy rejects the call or fails the run."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from observability.models import Run, RunEvent, Span
from orchestrations.approvals import approvals_expire
from orchestrations.models import Approval
from providers.aio import run_sync
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent, make_mcp_server
from tests.fakes.behaviours import json_answer, tool_calls
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"response": "Order 42 has shipped with DHL.", "priority": "low"}
INQUIRY = {"inquiry": "Where is order 42?"}
LOOKUP = {"name": "lookup_order", "arguments": {"order_id": "42"}}


@pytest.fixture
def provider(member, fake_openai):
    return make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)


@pytest.fixture
def orders_server(member, fake_mcp):
    return make_mcp_server(member.organization, url=fake_mcp.url, headers=fake_mcp.headers, name="Orders")


def approving_agent(organization, server, extra: str = ""):
    entry = f"{{mcp_server: {server.pk}, tool: lookup_order, requires_approval: true{extra}}}"
    yaml = support_yaml(
        provider="openai_compatible", model="gpt-4o-mini", strategy="react", tools=f"tools:\n  - {entry}\n"
    )
    return make_agent(organization, yaml, name="Order desk")


def start(client, agent):
    response = client.post(f"/api/agents/{agent.pk}/test", {"input": INQUIRY}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "waiting"
    run = Run.objects.get(pk=body["run_id"])
    approval = Approval.objects.get(pk=body["approval_id"])
    return run, approval


def last_tool_answer(fake_openai) -> dict:
    (answer,) = [m for m in fake_openai.requests[-1].json["messages"] if m["role"] == "tool"]
    return json.loads(answer["content"])


def test_the_run_waits_and_an_approved_call_is_made_once(
    auth_client, member, provider, orders_server, fake_openai, fake_mcp
):
    agent = approving_agent(member.organization, orders_server)
    fake_openai.enqueue(tool_calls(LOOKUP), json_answer(GOOD))

    run, approval = start(auth_client, agent)

    assert run.status == Run.Status.WAITING and fake_mcp.calls == []
    assert approval.kind == "tool" and approval.status == "pending"
    assert approval.subject["tool"] == "lookup_order" and approval.subject["arguments"] == {"order_id": "42"}
    requested = RunEvent.objects.get(run=run, type="approval.requested").data
    assert requested["approval_id"] == approval.pk and requested["subject"]["mcp_server"] == orders_server.pk
    assert Span.objects.get(run=run, kind="tool").status == "waiting"
    listed = auth_client.get("/api/approvals?status=pending").json()["results"]
    assert [row["id"] for row in listed] == [approval.pk]

    decided = auth_client.post(f"/api/approvals/{approval.pk}", {"decision": "approve"}, format="json")

    assert decided.status_code == 200, decided.content
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert run.output == GOOD
    assert [(call.tool, call.arguments) for call in fake_mcp.calls] == [("lookup_order", {"order_id": "42"})]
    assert last_tool_answer(fake_openai) == {"order_id": "42", "status": "shipped", "carrier": "DHL"}
    # Each turn asked once: the turn before the wait is given again on resume, not paid twice.
    assert len(fake_openai.requests) == 2
    assert Span.objects.filter(run=run, kind="llm").count() == 2
    assert run.input_tokens == sum(
        Span.objects.filter(run=run, kind="llm").values_list("input_tokens", flat=True)
    )
    tools = list(
        Span.objects.filter(run=run, kind="tool").order_by("started_at").values_list("status", flat=True)
    )
    assert tools == ["paused", "completed"]  # the call that waited, and the one made on approval
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types[-1] == "run.completed" and "approval.resolved" in types and "run.resumed" in types
    assert auth_client.get("/api/approvals?status=approved").json()["results"][0]["id"] == approval.pk


def test_a_rejected_call_reaches_the_model_as_rejected_with_the_comment(
    auth_client, member, provider, orders_server, fake_openai, fake_mcp
):
    agent = approving_agent(member.organization, orders_server)
    fake_openai.enqueue(tool_calls(LOOKUP), json_answer(GOOD))
    run, approval = start(auth_client, agent)

    body = {"decision": "reject", "comment": "not this customer"}
    decided = auth_client.post(f"/api/approvals/{approval.pk}", body, format="json")

    assert decided.status_code == 200
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED  # the model answered without the tool
    assert fake_mcp.calls == []
    error = last_tool_answer(fake_openai)["error"]
    assert error["code"] == "approval_rejected" and "not this customer" in error["message"]
    failed = RunEvent.objects.get(run=run, type="tool.failed").data
    assert failed["code"] == "approval_rejected"
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("policy", ["reject", "fail"])
def test_an_overdue_call_approval_expires_by_its_policy(
    auth_client, member, provider, orders_server, fake_openai, fake_mcp, policy
):
    extra = f", approval_timeout_s: 30, on_approval_timeout: {policy}"
    agent = approving_agent(member.organization, orders_server, extra)
    fake_openai.enqueue(tool_calls(LOOKUP), json_answer(GOOD))
    run, approval = start(auth_client, agent)
    assert approval.expires_at is not None

    expired = run_sync(approvals_expire, now=timezone.now() + dt.timedelta(seconds=31))

    assert [a.pk for a in expired] == [approval.pk]
    run.refresh_from_db()
    assert fake_mcp.calls == []
    if policy == "reject":
        assert run.status == Run.Status.COMPLETED
        assert last_tool_answer(fake_openai)["error"]["code"] == "approval_rejected"
    else:
        assert run.status == Run.Status.FAILED and run.error["code"] == "approval_expired"


def test_the_approval_timeout_keys_are_validated(auth_client, member, orders_server):
    entry = f"{{mcp_server: {orders_server.pk}, tool: lookup_order, on_approval_timeout: later}}"
    yaml = support_yaml(strategy="react", tools=f"tools:\n  - {entry}\n")
    response = auth_client.post("/api/agents", {"name": "x", "config_yaml": yaml}, format="json")
    assert response.status_code == 400
    assert "on_approval_timeout" in json.dumps(response.json())


def test_another_organization_cannot_see_or_decide(
    auth_client, other_client, member, provider, orders_server, fake_openai, fake_mcp
):
    agent = approving_agent(member.organization, orders_server)
    fake_openai.enqueue(tool_calls(LOOKUP))
    run, approval = start(auth_client, agent)

    assert other_client.get("/api/approvals").json()["results"] == []
    assert other_client.get(f"/api/approvals/{approval.pk}").status_code == 404
    response = other_client.post(f"/api/approvals/{approval.pk}", {"decision": "approve"}, format="json")
    assert response.status_code == 404
    approval.refresh_from_db()
    run.refresh_from_db()
    assert approval.status == "pending" and run.status == Run.Status.WAITING and fake_mcp.calls == []


async def test_a_deployment_call_whose_run_waits_is_202_with_where_to_follow_it(
    member, provider, orders_server, fake_openai, fake_mcp
):
    from django.test import AsyncClient

    from tests.deployments.helpers import bearer, deploy

    agent = await sync_to_async(approving_agent)(member.organization, orders_server)
    _, key = await sync_to_async(deploy)(member, agent, name="order-desk")
    fake_openai.enqueue(tool_calls(LOOKUP), json_answer(GOOD))

    response = await AsyncClient().post(
        "/workflows/order-desk/execute",
        json.dumps({"inputs": INQUIRY}),
        content_type="application/json",
        headers=bearer(key),
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "waiting" and body["approval_id"].startswith("appr-")
    assert body["follow_url"] == f"/workflows/order-desk/runs/{body['run_id']}/events"
    run = await Run.objects.aget(pk=body["run_id"])
    assert run.status == Run.Status.WAITING and run.kind == "deployment"


async def test_the_mcp_tool_of_a_deployment_reports_the_wait_as_its_result(
    member, provider, orders_server, fake_openai, fake_mcp
):
    from tests.deployments.helpers import deploy
    from tests.deployments.test_mcp import session_calls

    agent = await sync_to_async(approving_agent)(member.organization, orders_server)
    _, key = await sync_to_async(deploy)(member, agent, name="order-desk-mcp", channels=["mcp"])
    fake_openai.enqueue(tool_calls(LOOKUP), json_answer(GOOD))

    _, (result,) = await session_calls("order-desk-mcp", key, [INQUIRY])

    # isError: no outputs to match the tool's output schema yet, which clients check
    text = result.content[0].text
    assert result.isError and text.startswith("Not finished") and "waiting for a person's approval" in text
    summary = json.loads(text[text.index("{") :])
    assert summary["status"] == "waiting" and result.meta["approval_id"] == summary["approval_id"]
    run = await Run.objects.aget(pk=summary["run_id"])
    assert run.status == Run.Status.WAITING and fake_mcp.calls == []
