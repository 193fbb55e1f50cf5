"""The HTTP channel in process (Django's async test client): calls, errors, limits, pinning, streams."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from prometheus_client import REGISTRY

from agents.services import agent_update
from deployments.models import DeploymentKey
from deployments.services import (
    deployment_create,
    deployment_key_revoke,
    deployment_redeploy,
    deployment_start,
    deployment_stop,
)
from observability.models import Run, RunEvent
from orchestrations.services import orchestration_create
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.deployments.helpers import GOOD, INPUTS, answering_agent, bearer, deploy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]


@pytest.fixture
def client():
    return AsyncClient()


@pytest.fixture
def deployed(admin_user):
    return deploy(admin_user, name="support")


async def execute(client, name, key=None, inputs=INPUTS, headers=None, path_suffix=""):
    return await client.post(
        f"/workflows/{name}/execute{path_suffix}",
        json.dumps({"inputs": inputs}),
        content_type="application/json",
        headers={**(bearer(key) if key else {}), **(headers or {})},
    )


def error_code(response) -> str:
    return response.json()["error"]["code"]


# --- a call --------------------------------------------------------------------------------------


async def test_a_call_returns_outputs_ids_and_usage_and_is_a_deployment_run(client, deployed):
    deployment, key = deployed
    response = await execute(client, "support", key)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["outputs"] == GOOD
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    assert body["usage"]["cost_usd"] > 0
    run = await Run.objects.aget(pk=body["run_id"])
    assert run.kind == "deployment" and run.status == "completed" and run.trace_id == body["trace_id"]
    assert run.deployment_id == deployment.pk and run.agent_id == deployment.agent_id
    assert run.user_id is None and run.input == INPUTS
    assert float(run.cost_usd) == body["usage"]["cost_usd"]
    key_row = await DeploymentKey.objects.aget(deployment_id=deployment.pk)
    assert key_row.last_used_at is not None


async def test_the_key_may_come_as_x_api_key(client, deployed):
    _, key = deployed
    response = await execute(client, "support", headers={"X-API-Key": key})
    assert response.status_code == 200 and response.json()["outputs"] == GOOD


async def test_describe_gives_the_input_and_output_schemas(client, deployed):
    _, key = deployed
    response = await client.get("/workflows/support", headers=bearer(key))
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "support" and body["title"] == "Support" and body["kind"] == "agent"
    assert body["description"] == "Answers customers" and body["version"] == "1.0.0"
    assert body["input_schema"] == {
        "type": "object",
        "properties": {"inquiry": {"type": "string", "description": "The customer question"}},
        "required": ["inquiry"],
        "additionalProperties": False,
    }
    assert body["output_schema"]["properties"]["priority"] == {"type": "string", "enum": ["low", "high"]}
    assert body["api_url"].endswith("/workflows/support/execute")
    assert (await client.get("/workflows/support")).status_code == 401


# --- refusals ------------------------------------------------------------------------------------


async def test_missing_wrong_and_revoked_keys_are_401(client, deployed, admin_user):
    deployment, key = deployed
    missing = await execute(client, "support")
    assert missing.status_code == 401 and error_code(missing) == "not_authenticated"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    wrong = await execute(client, "support", key[:-4] + "AAAA")
    assert wrong.status_code == 401 and error_code(wrong) == "invalid_api_key"
    assert (await execute(client, "support", "not-even-a-key")).status_code == 401
    key_row = await DeploymentKey.objects.aget(deployment_id=deployment.pk)
    await sync_to_async(deployment_key_revoke)(user=admin_user, deployment=deployment, key_id=key_row.pk)
    assert (await execute(client, "support", key)).status_code == 401
    assert not await Run.objects.aexists()


async def test_a_key_of_deployment_a_does_not_open_deployment_b(client, admin_user):
    _, key_a = await sync_to_async(deploy)(admin_user, name="bot-a")
    await sync_to_async(deploy)(admin_user, name="bot-b")
    refused = await execute(client, "bot-b", key_a)
    assert refused.status_code == 401 and error_code(refused) == "invalid_api_key"
    assert (await client.get("/workflows/bot-b", headers=bearer(key_a))).status_code == 401
    assert (await execute(client, "bot-a", key_a)).status_code == 200


async def test_stopped_deployments_are_404_until_started(client, deployed, admin_user):
    deployment, key = deployed
    assert (await execute(client, "no-such-bot", key)).status_code == 401  # an unknown name: a wrong key
    await sync_to_async(deployment_stop)(user=admin_user, deployment=deployment)
    stopped = await execute(client, "support", key)
    assert stopped.status_code == 404 and error_code(stopped) == "not_found"
    assert (await client.get("/workflows/support", headers=bearer(key))).status_code == 404
    await sync_to_async(deployment_start)(user=admin_user, deployment=deployment)
    assert (await execute(client, "support", key)).status_code == 200


async def test_a_channel_that_is_not_enabled_answers_404(client, admin_user):
    _, key = await sync_to_async(deploy)(admin_user, name="mcp-only", channels=["mcp"])
    assert (await execute(client, "mcp-only", key)).status_code == 404
    _, key = await sync_to_async(deploy)(admin_user, name="api-only", channels=["api"])
    assert (await execute(client, "api-only", key)).status_code == 200
    cli = await execute(client, "api-only", key, headers={"X-Studio-Channel": "cli"})
    assert cli.status_code == 404


async def test_invalid_inputs_are_400_before_any_run(client, deployed):
    _, key = deployed
    response = await execute(client, "support", key, inputs={"question": 3})
    assert response.status_code == 400 and error_code(response) == "invalid_input"
    assert set(response.json()["error"]["fields"]) == {"inquiry", "question"}
    malformed = await client.post(
        "/workflows/support/execute", "{nope", content_type="application/json", headers=bearer(key)
    )
    assert malformed.status_code == 400 and error_code(malformed) == "malformed_request"
    not_an_object = await client.post(
        "/workflows/support/execute",
        json.dumps({"inputs": [1]}),
        content_type="application/json",
        headers=bearer(key),
    )
    assert not_an_object.status_code == 400
    assert (await client.get("/workflows/support/execute", headers=bearer(key))).status_code == 405
    assert not await Run.objects.aexists()


async def test_a_suspended_organization_is_refused(client, deployed, admin_user):
    _, key = deployed
    organization = admin_user.organization
    organization.status = "suspended"
    await organization.asave()
    response = await execute(client, "support", key)
    assert response.status_code == 403 and error_code(response) == "organization_suspended"


@pytest.mark.parametrize(
    "script, status, code",
    [
        ([{"error": "provider_error", "message": "upstream exploded"}], 502, "provider_error"),
        ([{"error": "timeout"}], 504, "provider_timeout"),
    ],
)
async def test_provider_failures_are_502_and_504_with_the_run_id(client, admin_user, script, status, code):
    agent = await sync_to_async(make_agent)(admin_user.organization, support_yaml(responses=script))
    _, key = await sync_to_async(deploy)(admin_user, agent, name="flaky")
    response = await execute(client, "flaky", key)
    assert response.status_code == status and error_code(response) == code
    run = await Run.objects.aget(pk=response.json()["error"]["fields"]["run_id"])
    assert run.status == "failed" and run.kind == "deployment"


async def test_over_budget_is_402_and_no_model_is_called(client, admin_user):
    agent = await sync_to_async(make_agent)(
        admin_user.organization,
        support_yaml(responses=[{"response": GOOD}], config_extra="  budget_limit_usd: 0.0000001"),
    )
    _, key = await sync_to_async(deploy)(admin_user, agent, name="broke")
    response = await execute(client, "broke", key)
    assert response.status_code == 402 and error_code(response) == "budget_exceeded"
    run = await Run.objects.aget(pk=response.json()["error"]["fields"]["run_id"])
    assert run.status == "failed" and await run.spans.filter(kind="llm").acount() == 0


# --- rate limit ----------------------------------------------------------------------------------


def requests_counted(outcome: str, channel: str = "api") -> float:
    sample = REGISTRY.get_sample_value(
        "studio_deployment_requests_total", {"channel": channel, "outcome": outcome}
    )
    return sample or 0.0


async def test_calls_over_the_limit_within_a_minute_are_429_with_retry_after(client, admin_user):
    limited_before = requests_counted("rate_limited")
    _, key = await sync_to_async(deploy)(admin_user, name="limited", rate_limit_per_minute=2)
    _, other_key = await sync_to_async(deploy)(admin_user, name="unlimited")
    assert [(await execute(client, "limited", key)).status_code for _ in range(2)] == [200, 200]
    limited = await execute(client, "limited", key)
    assert limited.status_code == 429 and error_code(limited) == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert requests_counted("rate_limited") == limited_before + 1
    assert await Run.objects.filter(deployment_id__isnull=False).acount() == 2
    # The limit is the deployment's own.
    assert (await execute(client, "unlimited", other_key)).status_code == 200


async def test_the_limit_fails_closed_when_the_cache_is_down(client, deployed, settings):
    _, key = deployed
    unavailable_before = requests_counted("unavailable")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    response = await execute(client, "support", key)
    assert response.status_code == 503 and error_code(response) == "rate_limiter_unavailable"
    assert not await Run.objects.aexists()
    assert requests_counted("unavailable") == unavailable_before + 1


# --- pinning -------------------------------------------------------------------------------------


async def test_callers_get_the_pinned_version_until_a_redeploy(client, admin_user):
    agent = await sync_to_async(answering_agent)(admin_user.organization)
    deployment, key = await sync_to_async(deploy)(admin_user, agent, name="pinned")
    v2 = {**GOOD, "response": "Version two answers."}
    await sync_to_async(agent_update)(
        user=admin_user, agent=agent, config_yaml=support_yaml(responses=[{"response": v2}])
    )
    before = await execute(client, "pinned", key)
    assert before.json()["outputs"] == GOOD  # the edit does not reach callers yet
    await sync_to_async(deployment_redeploy)(user=admin_user, deployment=deployment)
    after = await execute(client, "pinned", key)
    assert after.json()["outputs"] == v2


async def test_an_orchestration_deployment_runs_its_pinned_pattern(client, admin_user):
    first = await sync_to_async(answering_agent)(admin_user.organization, name="First")
    second = await sync_to_async(answering_agent)(admin_user.organization, GOOD | {"response": "final"})
    orchestration = await sync_to_async(orchestration_create)(
        user=admin_user, name="Pipeline", pattern="sequential", agent_ids=[first.pk, second.pk]
    )
    deployment, key = await sync_to_async(deployment_create)(
        user=admin_user, orchestration_id=orchestration.pk, name="pipeline"
    )
    response = await execute(client, "pipeline", key)
    assert response.status_code == 200, response.json()
    assert response.json()["outputs"]["output"] == GOOD | {"response": "final"}
    assert [step["agent"] for step in response.json()["outputs"]["steps"]] == ["First", "Support"]
    run = await Run.objects.aget(pk=response.json()["run_id"])
    assert run.orchestration_id == orchestration.pk and run.deployment_id == deployment.pk
    missing = await execute(client, "pipeline", key, inputs={})
    assert missing.status_code == 400 and "inquiry" in missing.json()["error"]["fields"]


# --- background calls and their events -----------------------------------------------------------


async def test_an_async_call_is_followed_through_its_events(client, deployed):
    _, key = deployed
    started = await execute(client, "support", key, path_suffix="?async=1")
    assert started.status_code == 202
    body = started.json()
    events_url = body["events_url"]
    assert events_url == f"/workflows/support/runs/{body['run_id']}/events"
    response = await client.get(events_url, headers=bearer(key))
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    frames = await _sse_frames(response)
    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["type"] == "run.started" and frames[-1]["type"] == "run.completed"
    assert frames[-1]["data"]["output"] == GOOD
    assert any(frame["type"] == "llm.delta" for frame in frames)  # background calls stream

    resumed = await _sse_frames(await client.get(events_url, {"after_seq": 2}, headers=bearer(key)))
    assert [frame["seq"] for frame in resumed] == [frame["seq"] for frame in frames[2:]]
    detail = (await client.get(body["run_url"], headers=bearer(key))).json()
    assert detail["status"] == "completed" and detail["outputs"] == GOOD


async def test_runs_of_another_deployment_are_not_visible(client, admin_user, deployed):
    _, key = deployed
    _, other_key = await sync_to_async(deploy)(admin_user, name="other")
    run_id = (await execute(client, "other", other_key)).json()["run_id"]
    assert (await client.get(f"/workflows/support/runs/{run_id}", headers=bearer(key))).status_code == 404
    assert (await client.get(f"/workflows/other/runs/{run_id}", headers=bearer(key))).status_code == 401
    events = await client.get(f"/workflows/support/runs/{run_id}/events", headers=bearer(key))
    assert events.status_code == 404
    assert await RunEvent.objects.filter(run_id=run_id).aexists()


async def _sse_frames(response) -> list[dict]:
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    return [
        json.loads(line.removeprefix("data: "))
        for block in text.split("\n\n")
        for line in block.splitlines()
        if line.startswith("data: ")
    ]
