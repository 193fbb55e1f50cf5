"""The management API of deployments: deploy, list, detail with usage, stop/start, redeploy, keys."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from agents.services import agent_update
from deployments.models import Deployment, DeploymentKey
from observability.models import AuditLog, Run
from orchestrations.services import orchestration_create
from tests.accounts.factories import make_user
from tests.agents.agent_configs import support_yaml
from tests.api_cases import APIResourceCases, Call
from tests.deployments.helpers import GOOD, answering_agent, deploy

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(admin_user):
    return answering_agent(admin_user.organization)


def post_deploy(client, **body):
    return client.post("/api/deploy", body, format="json")


class TestDeploymentAPI(APIResourceCases):
    list_path = "/api/deployments"
    detail_path = "/api/deployments/{pk}"
    writes = (
        Call("POST", "/api/deploy", {"agent_id": "agent-" + "0" * 32}),
        Call("DELETE", "/api/deployments/{pk}"),
        Call("POST", "/api/deployments/{pk}/start"),
        Call("POST", "/api/deployments/{pk}/redeploy"),
        Call("POST", "/api/deployments/{pk}/keys"),
        Call("DELETE", lambda dep: f"/api/deployments/{dep.pk}/keys/{dep.keys.get().pk}"),
    )
    write_role = "admin"
    list_queries = 2  # authentication (user with organization), the page with its count
    detail_queries = 4  # authentication, the deployment, its keys, the usage aggregate

    def make(self, organization):
        deployment, _ = deploy(make_user(organization, role="admin"))
        return deployment


# --- deploy --------------------------------------------------------------------------------------


def test_deploy_returns_urls_commands_and_a_key_that_is_stored_only_as_a_hash(admin_client_, agent, settings):
    response = post_deploy(admin_client_, agent_id=agent.pk, name="support-bot")
    assert response.status_code == 201, response.json()
    body = response.json()
    key = body["api_key"]
    assert body["deployment_id"].startswith("deploy-") and body["name"] == "support-bot"
    assert body["api_url"] == f"{settings.PUBLIC_URL}/workflows/support-bot/execute"
    assert body["mcp_url"] == f"{settings.PUBLIC_URL}/mcp/support-bot"
    assert body["mcp_command"].startswith(f"claude mcp add --transport http support-bot {body['mcp_url']} ")
    assert f"Authorization: Bearer {key}" in body["mcp_command"]
    assert body["cli_command"].startswith("studio execute support-bot --url ")
    assert f"--key {key}" in body["cli_command"] and "--input inquiry=..." in body["cli_command"]
    assert key.startswith("sk_deploy_") and len(key) >= 10 + 43

    stored = DeploymentKey.objects.get(deployment_id=body["deployment_id"])
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(stored.prefix) and stored.prefix != key
    # The secret appears nowhere after this response: not in the detail, not in the audit trail.
    detail = admin_client_.get(f"/api/deployments/{body['deployment_id']}").json()
    assert key not in json.dumps(detail) and detail["keys"][0]["prefix"] == stored.prefix
    audit = AuditLog.objects.get(model_name="Deployment", record_id=body["deployment_id"])
    assert audit.operation_type == "create" and key not in json.dumps(audit.changes)


def test_the_deployment_pins_the_agent_config_and_version(admin_client_, agent):
    body = post_deploy(admin_client_, agent_id=agent.pk).json()
    deployment = Deployment.objects.get(pk=body["deployment_id"])
    assert deployment.agent_id == agent.pk and deployment.orchestration_id is None
    assert deployment.pinned["kind"] == "agent"
    assert deployment.pinned["agent"]["config"] == agent.config
    assert deployment.pinned_version == agent.version == "1.0.0"
    assert deployment.status == "running" and deployment.started_at is not None
    assert deployment.channels == ["api", "mcp", "cli"] and deployment.rate_limit_per_minute == 60


def test_a_taken_name_is_a_409_and_no_name_derives_a_free_one(admin_client_, agent):
    assert post_deploy(admin_client_, agent_id=agent.pk, name="support").status_code == 201
    clash = post_deploy(admin_client_, agent_id=agent.pk, name="support")
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "name_taken"
    derived = post_deploy(admin_client_, agent_id=agent.pk).json()["name"]
    assert derived.startswith("support-") and derived != "support"
    assert Deployment.objects.count() == 2


def test_names_are_unique_across_organizations(admin_client_, agent, other_client, other_org_owner):
    other_agent = answering_agent(other_org_owner.organization)
    assert post_deploy(other_client, agent_id=other_agent.pk, name="shared-name").status_code == 201
    assert post_deploy(admin_client_, agent_id=agent.pk, name="shared-name").status_code == 409


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "Not A Slug"}, "name"),
        ({"name": "-leading"}, "name"),
        ({"channels": ["smoke-signals"]}, "channels.0"),
        ({"channels": []}, "channels"),
        ({"channels": {"api": False}}, "channels"),
        ({"channels": {"fax": True}}, "channels"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
    ],
)
def test_invalid_deploy_requests_are_400_and_create_nothing(admin_client_, agent, body, field):
    response = post_deploy(admin_client_, agent_id=agent.pk, **body)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]
    assert not Deployment.objects.exists()


def test_channels_may_be_given_as_flags(admin_client_, agent):
    response = post_deploy(
        admin_client_, agent_id=agent.pk, channels={"api": True, "mcp": False, "cli": True}
    )
    assert response.status_code == 201, response.content
    assert Deployment.objects.get().channels == ["api", "cli"]


def test_exactly_one_target_is_required(admin_client_, admin_user, agent):
    orchestration = _orchestration(admin_user)
    both = post_deploy(admin_client_, agent_id=agent.pk, orchestration_id=orchestration.pk)
    assert both.status_code == 400
    assert post_deploy(admin_client_).status_code == 400


def test_another_organizations_agent_cannot_be_deployed(admin_client_, other_org_owner):
    foreign = answering_agent(other_org_owner.organization)
    assert post_deploy(admin_client_, agent_id=foreign.pk).status_code == 404
    assert post_deploy(admin_client_, agent_id="agent-" + "0" * 32).status_code == 404


def test_an_orchestration_is_deployed_with_its_agents_pinned(admin_client_, admin_user):
    orchestration = _orchestration(admin_user)
    body = post_deploy(admin_client_, orchestration_id=orchestration.pk).json()
    deployment = Deployment.objects.get(pk=body["deployment_id"])
    assert deployment.pinned["kind"] == "orchestration" and deployment.pinned["pattern"] == "sequential"
    assert [spec["agent_id"] for spec in deployment.pinned["agents"]] == orchestration.agent_ids
    assert deployment.pinned_version.startswith("cfg-")
    detail = admin_client_.get(f"/api/deployments/{deployment.pk}").json()
    assert detail["kind"] == "orchestration" and detail["orchestration_id"] == orchestration.pk
    assert detail["input_schema"]["properties"]["inquiry"]["type"] == "string"


def _orchestration(user):
    first, second = answering_agent(user.organization), answering_agent(user.organization)
    return orchestration_create(
        user=user, name="Pipeline", pattern="sequential", agent_ids=[first.pk, second.pk]
    )


# --- roles and isolation -------------------------------------------------------------------------


# --- list and detail -----------------------------------------------------------------------------


def test_list_filters_by_status_and_paginates(admin_client_, admin_user, agent):
    deploy(admin_user, agent, name="one")
    stopped, _ = deploy(admin_user, agent, name="two")
    admin_client_.delete(f"/api/deployments/{stopped.pk}")
    page = admin_client_.get("/api/deployments", {"status": "running"}).json()
    assert [row["name"] for row in page["results"]] == ["one"]
    assert page["results"][0]["api_url"].endswith("/workflows/one/execute")
    assert "pinned" not in page["results"][0]
    stopped_page = admin_client_.get("/api/deployments", {"status": "stopped"}).json()
    assert [row["name"] for row in stopped_page["results"]] == ["two"]
    assert admin_client_.get("/api/deployments", {"limit": 1}).json() | {"results": None} == {
        "count": 2,
        "page": 1,
        "limit": 1,
        "results": None,
    }
    assert admin_client_.get("/api/deployments", {"status": "paused"}).status_code == 400


@pytest.mark.parametrize("runs", [1, 20])
def test_detail_query_count_is_constant(admin_client_, admin_user, agent, django_assert_num_queries, runs):
    deployment, _ = deploy(admin_user, agent)
    for _ in range(runs):
        _ledger_run(deployment, status="completed")
    # authentication, the deployment, its keys, the usage aggregate
    with django_assert_num_queries(4):
        assert admin_client_.get(f"/api/deployments/{deployment.pk}").status_code == 200


def test_detail_shows_usage_summed_over_the_deployments_runs_only(admin_client_, admin_user, agent):
    deployment, _ = deploy(admin_user, agent, name="measured")
    other, _ = deploy(admin_user, agent, name="other")
    _ledger_run(deployment, status="completed", input_tokens=100, output_tokens=20, cost_usd="0.0125")
    _ledger_run(deployment, status="completed", input_tokens=50, output_tokens=5, cost_usd="0.0075")
    _ledger_run(deployment, status="failed", input_tokens=7, output_tokens=0, cost_usd="0.001")
    _ledger_run(other, status="completed", input_tokens=999, output_tokens=999, cost_usd="9")
    usage = admin_client_.get(f"/api/deployments/{deployment.pk}").json()["usage"]
    assert usage | {"last_run_at": None} == {
        "runs": 3,
        "completed": 2,
        "failed": 1,
        "input_tokens": 157,
        "output_tokens": 25,
        "total_tokens": 182,
        "cost_usd": 0.021,
        "last_run_at": None,
    }
    assert usage["last_run_at"] is not None


def _ledger_run(deployment, *, status, input_tokens=1, output_tokens=1, cost_usd="0.001"):
    return Run.objects.create(
        organization_id=deployment.organization_id,
        kind=Run.Kind.DEPLOYMENT,
        deployment_id=deployment.pk,
        agent_id=deployment.agent_id or "",
        status=status,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=Decimal(cost_usd),
    )


# --- stop, start, redeploy, keys -----------------------------------------------------------------


def test_stop_and_start_are_audited_and_idempotent(admin_client_, admin_user, agent):
    deployment, _ = deploy(admin_user, agent)
    stopped = admin_client_.delete(f"/api/deployments/{deployment.pk}")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert stopped.json()["stopped_at"] is not None
    assert admin_client_.delete(f"/api/deployments/{deployment.pk}").json()["status"] == "stopped"
    started = admin_client_.post(f"/api/deployments/{deployment.pk}/start").json()
    assert started["status"] == "running" and started["stopped_at"] is None
    operations = list(
        AuditLog.objects.filter(record_id=deployment.pk)
        .order_by("created_at", "id")
        .values_list("operation_type", flat=True)
    )
    assert operations == ["create", "stop", "start"]


def test_redeploy_pins_the_current_config(admin_client_, admin_user, agent):
    deployment, _ = deploy(admin_user, agent)
    agent_update(
        user=admin_user,
        agent=agent,
        config_yaml=support_yaml(responses=[{"response": {**GOOD, "response": "v2"}}]),
    )
    agent.refresh_from_db()
    assert agent.version == "1.0.1"
    deployment.refresh_from_db()
    assert deployment.pinned_version == "1.0.0"
    assert deployment.pinned["agent"]["config"]["provider"]["responses"][0]["response"] == GOOD

    body = admin_client_.post(f"/api/deployments/{deployment.pk}/redeploy").json()
    assert body["pinned_version"] == "1.0.1"
    deployment.refresh_from_db()
    assert deployment.pinned["agent"]["config"] == agent.config
    audit = AuditLog.objects.get(record_id=deployment.pk, operation_type="redeploy")
    assert audit.changes == {"pinned_version": {"from": "1.0.0", "to": "1.0.1"}}


def test_keys_are_added_shown_once_and_revoked(admin_client_, admin_user, agent):
    deployment, first_secret = deploy(admin_user, agent)
    created = admin_client_.post(f"/api/deployments/{deployment.pk}/keys")
    assert created.status_code == 201
    new = created.json()
    assert new["api_key"].startswith(new["prefix"]) and new["api_key"] != first_secret
    assert new["is_active"] and new["revoked_at"] is None
    revoked = admin_client_.delete(f"/api/deployments/{deployment.pk}/keys/{new['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert not revoked.json()["is_active"]
    keys = admin_client_.get(f"/api/deployments/{deployment.pk}").json()["keys"]
    assert {key["id"]: key["is_active"] for key in keys} == {
        new["id"]: False,
        deployment.keys.exclude(pk=new["id"]).get().pk: True,
    }
    assert AuditLog.objects.filter(model_name="DeploymentKey", operation_type="revoke").count() == 1


def test_a_key_of_another_deployment_cannot_be_revoked_through_this_one(admin_client_, admin_user, agent):
    first, _ = deploy(admin_user, agent, name="first")
    second, _ = deploy(admin_user, agent, name="second")
    key = second.keys.get()
    assert admin_client_.delete(f"/api/deployments/{first.pk}/keys/{key.pk}").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


# --- the model ---------------------------------------------------------------------------------


def test_the_database_requires_exactly_one_target(admin_user, agent):
    orchestration = _orchestration(admin_user)
    for targets in ({}, {"agent": agent, "orchestration": orchestration}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Deployment.objects.create(organization=admin_user.organization, name="x", **targets)
