"""The official templates with a tool and a step behind a person's approval, used and run through the
API on the offline mock: `order-status-assistant` names its MCP server by the slot `orders`, which
`use` fills with one of the caller's servers (here the official SDK's server of the tests, on
127.0.0.1), refusing a missing, unknown or unfit one at `mcp_servers.orders`; its agent waits for the
approval of its lookup, which is then made once. `approved-content-pipeline` waits for the approval
of the writer's draft: approved, the copy editor runs and the run completes; rejected, it ends
cancelled with the comment."""

from __future__ import annotations

import pytest

from agents.models import Agent
from agents.yaml_loader import load_yaml
from observability.models import AuditLog, Run, RunEvent, Span
from orchestrations.models import Approval
from templates.models import OrchestrationTemplate
from templates.official import TemplateDataError, official_templates_load
from tests.agents.agent_configs import agent_config, agent_yaml
from tests.agents.factories import make_mcp_server
from tests.conftest import client_for
from tests.providers.factories import make_provider_config
from tests.templates.factories import load_official, make_agent_template

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_QUESTION = {"message": "Where is my order 42?"}
STRATEGY_INPUT = {"topic": "Onboarding emails that people read"}


@pytest.fixture
def official(db):
    return load_official()


@pytest.fixture
def orders(member, fake_mcp):
    """The real MCP server of the tests, as one of the member's organization's tool sources."""
    return make_mcp_server(member.organization, url=fake_mcp.url, headers=fake_mcp.headers, name="Orders")


def use(client, kind: str, template, **body):
    return client.post(f"/api/templates/{kind}/{template.pk}/use", {"name": "Mine", **body}, format="json")


def slot_error(response) -> list[str]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and list(error["fields"]) == ["mcp_servers.orders"]
    return error["fields"]["mcp_servers.orders"]


def waiting(response) -> tuple[Run, Approval]:
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "waiting"
    return Run.objects.get(pk=body["run_id"]), Approval.objects.get(pk=body["approval_id"])


def decide(client, approval, decision: str, comment: str = "") -> None:
    body = {"decision": decision, "comment": comment}
    response = client.post(f"/api/approvals/{approval.pk}", body, format="json")
    assert response.status_code == 200, response.content


# --- the MCP tool behind an approval ---------------------------------------------------------------


def test_the_gallery_shows_the_slot_the_template_needs(viewer, official):
    template = official["order-status-assistant"]
    detail = client_for(viewer).get(f"/api/templates/agents/{template.pk}").json()

    assert detail["mcp_servers"] == [{"slot": "orders", "tools": ["lookup_order"]}]
    assert detail["config"]["tools"][0]["mcp_server"] == {"slot": "orders"}
    assert detail["config"]["tools"][0]["requires_approval"] is True
    assert detail["mock_responses"][0]["tool_calls"][0]["name"] == "lookup_order"
    listed = client_for(viewer).get("/api/templates/agents?category=support&limit=100").json()["results"]
    assert {row["slug"]: row["mcp_servers"] for row in listed}["faq-assistant"] == []


def test_the_agent_waits_for_the_lookups_approval_and_makes_it_once(auth_client, official, orders, fake_mcp):
    made = use(auth_client, "agents", official["order-status-assistant"], mcp_servers={"orders": orders.pk})
    assert made.status_code == 201, made.content
    agent = made.json()["agent"]
    tool = load_yaml(agent["config_yaml"])["tools"][0]
    assert tool == {
        "mcp_server": orders.pk,
        "tool": "lookup_order",
        "description": "The status of an order (status, carrier), by its order number.",
        "requires_approval": True,
    }
    assert made.json()["provider"] == {
        "kind": "mock",
        "model": "mock-1",
        "provider_id": None,
        "fallback": True,
    }

    run, approval = waiting(
        auth_client.post(f"/api/agents/{agent['id']}/test", {"input": ORDER_QUESTION}, format="json")
    )

    assert fake_mcp.calls == [] and run.status == Run.Status.WAITING
    assert approval.kind == "tool" and approval.subject["tool"] == "lookup_order"
    assert approval.subject["arguments"] == {"order_id": "42"}
    pending = auth_client.get("/api/approvals?status=pending").json()["results"]
    assert [row["id"] for row in pending] == [approval.pk]

    decide(auth_client, approval, "approve")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert [(call.tool, call.arguments) for call in fake_mcp.calls] == [("lookup_order", {"order_id": "42"})]
    assert fake_mcp.calls[0].headers["x-api-key"] == fake_mcp.api_key  # the server's own auth header
    assert set(run.output) == {"response", "order_status", "needs_human"}
    span = Span.objects.get(run=run, kind="tool", status="completed")
    assert span.name == "lookup_order"
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert "approval.resolved" in types and "tool.completed" in types and types[-1] == "run.completed"


def test_a_rejected_lookup_is_never_made(auth_client, official, orders, fake_mcp):
    made = use(auth_client, "agents", official["order-status-assistant"], mcp_servers={"orders": orders.pk})
    agent_id = made.json()["agent"]["id"]
    run, approval = waiting(
        auth_client.post(f"/api/agents/{agent_id}/test", {"input": ORDER_QUESTION}, format="json")
    )

    decide(auth_client, approval, "reject", "not without the customer's consent")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED  # the model is told, and answers without the lookup
    assert fake_mcp.calls == []
    failed = RunEvent.objects.get(run=run, type="tool.failed").data
    assert "not without the customer's consent" in str(failed)


def test_on_the_organizations_provider_the_agent_is_not_scripted(auth_client, member, official, orders):
    provider = make_provider_config(member.organization, provider="openai", is_default=True)
    made = use(auth_client, "agents", official["order-status-assistant"], mcp_servers={"orders": orders.pk})

    assert made.status_code == 201, made.content
    config = load_yaml(made.json()["agent"]["config_yaml"])
    assert config["provider"] == {"provider": "openai", "model": "gpt-4o-mini", "provider_id": provider.pk}
    assert config["tools"][0]["mcp_server"] == orders.pk


def test_use_without_a_server_for_the_slot_is_a_400_and_creates_nothing(auth_client, official):
    template = official["order-status-assistant"]

    (message,) = slot_error(use(auth_client, "agents", template))

    assert "needs one of your MCP servers" in message and "lookup_order" in message
    template.refresh_from_db()
    assert template.downloads == 0 and not Agent.objects.exists()
    assert not AuditLog.objects.filter(operation_type="use").exists()


def test_a_server_for_a_slot_the_template_does_not_have_is_a_400(auth_client, official, orders):
    response = use(auth_client, "agents", official["faq-assistant"], mcp_servers={"orders": orders.pk})

    (message,) = slot_error(response)
    assert "no MCP server slot 'orders'" in message and not Agent.objects.exists()


def test_another_organizations_server_is_refused_at_the_slot(auth_client, official, other_org_owner):
    theirs = make_mcp_server(other_org_owner.organization, name="Their orders")

    response = use(
        auth_client, "agents", official["order-status-assistant"], mcp_servers={"orders": theirs.pk}
    )

    assert slot_error(response) == [f"no MCP server {theirs.pk!r} in this organization"]
    assert not Agent.objects.exists()


def test_a_server_that_does_not_allow_the_tool_or_is_no_id_is_refused_at_the_slot(
    auth_client, member, official
):
    narrow = make_mcp_server(member.organization, allowed_tools=["repeat_text"])
    template = official["order-status-assistant"]

    (not_allowed,) = slot_error(use(auth_client, "agents", template, mcp_servers={"orders": narrow.pk}))
    (not_an_id,) = slot_error(use(auth_client, "agents", template, mcp_servers={"orders": "orders-db"}))

    assert "does not allow the tool 'lookup_order'" in not_allowed
    assert "'mcps-' followed by 32 hex characters" in not_an_id
    assert not Agent.objects.exists()


def test_an_orchestration_template_fills_the_slots_of_all_its_agents(auth_client, member, orders):
    tools = [{"mcp_server": {"slot": "orders"}, "tool": "lookup_order"}]
    slotted = agent_yaml(config={"strategy": "react"}, tools=tools)
    roles = [make_agent_template(member.organization, config_yaml=slotted) for _ in range(2)]
    template = OrchestrationTemplate.objects.create(
        organization=member.organization,
        name="Order team",
        pattern="sequential",
        agent_template_ids=[role.pk for role in roles],
    )
    detail = auth_client.get(f"/api/templates/orchestrations/{template.pk}").json()
    assert detail["mcp_servers"] == [{"slot": "orders", "tools": ["lookup_order"]}]
    assert slot_error(use(auth_client, "orchestrations", template))

    made = use(auth_client, "orchestrations", template, mcp_servers={"orders": orders.pk})

    assert made.status_code == 201, made.content
    for entry in made.json()["agents"]:
        assert entry["agent"]["config"]["tools"][0]["mcp_server"] == orders.pk


# --- the official files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "path", "message"),
    [
        ("mcps-" + "0" * 32, "config_yaml.tools[0]", "{slot: NAME} only"),
        ("{slot: Orders!}", "config_yaml.tools[0].mcp_server.slot", "must be a slot name"),
        ("{slot: orders, url: x}", "config_yaml.tools[0].mcp_server", "nothing else"),
    ],
)
def test_an_official_template_names_servers_by_valid_slots_only(data_dir, server, path, message):
    file = data_dir / "agents" / "order-status-assistant.yaml"
    file.write_text(file.read_text().replace("mcp_server: {slot: orders}", f"mcp_server: {server}"))

    with pytest.raises(TemplateDataError) as raised:
        official_templates_load(directory=data_dir)

    (line,) = raised.value.errors
    assert line.startswith(f"agents/order-status-assistant.yaml: {path}: ") and message in line


def test_a_bad_mock_script_is_reported_at_its_path(data_dir):
    file = data_dir / "agents" / "order-status-assistant.yaml"
    file.write_text(file.read_text().replace("  - tool_calls:\n", "  - 42\n  - tool_calls:\n", 1))

    with pytest.raises(TemplateDataError) as raised:
        official_templates_load(directory=data_dir)

    (line,) = raised.value.errors
    assert line.startswith("agents/order-status-assistant.yaml: mock_responses[0]: must be a mapping")


def test_an_organizations_template_may_keep_its_own_servers(member):
    orders = make_mcp_server(member.organization)
    own = agent_config(
        config={"strategy": "react"}, tools=[{"mcp_server": orders.pk, "tool": "lookup_order"}]
    )
    template = make_agent_template(member.organization, config_yaml=agent_yaml(own))
    assert template.config["tools"][0]["mcp_server"] == orders.pk


# --- the step behind an approval -----------------------------------------------------------------


def pipeline_run(client, official) -> tuple[dict, Run, Approval]:
    made = use(client, "orchestrations", official["approved-content-pipeline"])
    assert made.status_code == 201, made.content
    body = made.json()
    orchestration = body["orchestration"]["id"]
    run, approval = waiting(
        client.post(f"/api/orchestrations/{orchestration}/execute", {"input": STRATEGY_INPUT}, format="json")
    )
    return body, run, approval


def agents_called(run: Run) -> list[str]:
    return list(
        Span.objects.filter(run=run, kind="agent", status="completed")
        .order_by("started_at")
        .values_list("name", flat=True)
    )


def test_the_pipeline_waits_for_the_draft_and_completes_when_approved(auth_client, official):
    made, run, approval = pipeline_run(auth_client, official)

    assert approval.kind == "step" and approval.subject["agent"] == "Mine: Blog post writer"
    assert set(approval.subject["output"]) == {"title", "article", "meta_description"}
    assert agents_called(run) == ["Mine: Content strategist", "Mine: Blog post writer"]
    assert approval.expires_at is not None  # three days, then rejected

    decide(auth_client, approval, "approve", "good to go")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert set(run.output["output"]) == {"edited_article", "changes", "readability"}
    assert agents_called(run)[-1] == "Mine: Copy editor"
    assert agents_called(run).count("Mine: Blog post writer") == 1  # not run again on resume


def test_a_rejected_draft_ends_the_run_cancelled_with_the_comment(auth_client, official):
    made, run, approval = pipeline_run(auth_client, official)

    decide(auth_client, approval, "reject", "off brand")

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.error["code"] == "approval_rejected" and "off brand" in run.error["message"]
    assert "Mine: Copy editor" not in agents_called(run)
