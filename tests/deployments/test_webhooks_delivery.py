"""Webhook deliveries for real: ledger events of real runs and deployments, signed, sent over HTTP
to a receiver on 127.0.0.1 by the process's sweeper, retried, recorded and, after repeated
failure, the webhook disabled."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from deployments.models import Webhook, WebhookDelivery
from deployments.services import deployment_stop
from deployments.webhook_delivery import webhook_sweeping_start, webhook_sweeping_stop
from deployments.webhooks import webhook_create
from observability.models import AuditLog, Run
from providers.reaping import runs_reap
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.conftest import client_for
from tests.deployments.factories import make_delivery, make_webhook
from tests.deployments.helpers import GOOD, INPUTS, bearer, deploy
from tests.fakes.webhook_receiver import WebhookReceiver, signature_valid
from tests.observability.factories import queued_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def receiver(receiver_server, settings) -> WebhookReceiver:
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True  # the receiver is on loopback, as the fake LLMs are
    settings.WEBHOOK_RETRY_DELAYS_S = [0.05, 0.05]  # three attempts, quickly
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    receiver_server.reset()
    return receiver_server


@pytest.fixture
async def sweeper(settings):
    settings.WEBHOOK_SWEEP_EVERY_S = 0.2
    yield webhook_sweeping_start()
    await webhook_sweeping_stop()


async def subscribe(user, receiver, events) -> Webhook:
    webhook, secret = await sync_to_async(webhook_create)(user=user, url=receiver.url, events=events)
    receiver.secret = secret
    return webhook


async def call_deployment(name: str, key: str, inputs=INPUTS):
    return await AsyncClient().post(
        f"/workflows/{name}/execute",
        json.dumps({"inputs": inputs}),
        content_type="application/json",
        headers=bearer(key),
    )


async def deliveries_of(webhook: Webhook) -> list[WebhookDelivery]:
    return [
        delivery async for delivery in WebhookDelivery.objects.filter(webhook=webhook).order_by("created_at")
    ]


async def settled(webhook: Webhook, count: int, timeout_s: float = 10.0) -> list[WebhookDelivery]:
    """The webhook's deliveries once `count` of them are no longer pending."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        deliveries = await deliveries_of(webhook)
        done = [delivery for delivery in deliveries if delivery.status != "pending"]
        if len(done) >= count or asyncio.get_running_loop().time() > deadline:
            return deliveries
        await asyncio.sleep(0.02)


# --- events of real runs and deployments -----------------------------------------------------------


async def test_a_deployment_call_and_its_stop_are_each_delivered_once_signed(admin_user, receiver, sweeper):
    webhook = await subscribe(admin_user, receiver, ["run.completed", "deployment.stopped"])
    deployment, key = await sync_to_async(deploy)(admin_user, name="hooked")

    response = await call_deployment("hooked", key)
    assert response.status_code == 200, response.json()
    [completed] = await receiver.wait_for(1, event="run.completed")
    assert completed.signature_valid
    assert not signature_valid("whsec_another", completed.headers["Studio-Signature"], completed.body)
    assert not signature_valid(receiver.secret, completed.headers["Studio-Signature"], completed.body + b" ")
    assert completed.headers["Content-Type"] == "application/json"
    body = completed.json
    assert body["type"] == "run.completed" and body["organization_id"] == admin_user.organization_id
    assert body["data"]["run_id"] == response.json()["run_id"] and body["data"]["output"] == GOOD
    assert body["data"]["deployment_id"] == deployment.pk and body["data"]["status"] == "completed"

    await sync_to_async(deployment_stop)(user=admin_user, deployment=deployment)
    [stopped] = await receiver.wait_for(1, event="deployment.stopped")
    assert stopped.signature_valid and stopped.json["data"]["deployment_id"] == deployment.pk

    await asyncio.sleep(0.5)  # several sweeps later: nothing was sent twice
    assert [received.event for received in receiver.received] == ["run.completed", "deployment.stopped"]
    deliveries = await settled(webhook, 2)
    assert {delivery.pk for delivery in deliveries} == {completed.delivery_id, stopped.delivery_id}
    assert all(d.status == "delivered" and d.attempts == 1 and d.status_code == 200 for d in deliveries)


async def test_a_failed_run_is_sent_to_run_failed_subscribers_only(admin_user, receiver, sweeper):
    await subscribe(admin_user, receiver, ["run.failed"])
    bad = {"response": {"response": "ok", "priority": "urgent"}}  # not one of the enum's values
    broken = await sync_to_async(make_agent)(admin_user.organization, support_yaml(responses=[bad, bad]))
    deployment, key = await sync_to_async(deploy)(admin_user, agent=broken)
    response = await call_deployment(deployment.name, key)
    assert response.status_code == 502, response.json()
    [failed] = await receiver.wait_for(1, event="run.failed")
    assert (
        failed.signature_valid
        and failed.json["data"]["run_id"] == response.json()["error"]["fields"]["run_id"]
    )
    assert (
        failed.json["data"]["status"] == "failed" and failed.json["data"]["error"]["code"] == "invalid_output"
    )
    await asyncio.sleep(0.3)
    assert [received.event for received in receiver.received] == ["run.failed"]


async def test_a_call_the_budget_refuses_sends_budget_exceeded_and_run_failed(admin_user, receiver, sweeper):
    await subscribe(admin_user, receiver, ["budget.exceeded", "run.failed"])
    frugal = support_yaml(config_extra="  budget_limit_usd: 0.0000001")
    agent = await sync_to_async(make_agent)(admin_user.organization, frugal)
    deployment, key = await sync_to_async(deploy)(admin_user, agent=agent)
    response = await call_deployment(deployment.name, key)
    assert response.status_code == 402, response.json()
    [exceeded] = await receiver.wait_for(1, event="budget.exceeded")
    [failed] = await receiver.wait_for(1, event="run.failed")
    assert exceeded.signature_valid and failed.signature_valid
    data = exceeded.json["data"]
    assert data["subject"] == agent.pk and data["limit_usd"] == pytest.approx(0.0000001)
    assert data["amount_usd"] > data["limit_usd"] and "budget" in data["message"]
    assert failed.json["data"]["error"]["code"] == "budget_exceeded"


async def test_a_run_whose_process_died_is_sent_as_run_failed_when_reaped(admin_user, receiver, sweeper):
    await subscribe(admin_user, receiver, ["run.failed"])
    stale = await sync_to_async(queued_run)(
        organization_id=admin_user.organization_id, user_id=admin_user.pk, kind="agent_test", input={}
    )
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    await Run.objects.filter(pk=stale.pk).aupdate(status="running", heartbeat_at=long_ago)
    [(reaped, _)] = await runs_reap()
    [failed] = await receiver.wait_for(1, event="run.failed")
    assert failed.signature_valid and failed.json["data"]["run_id"] == reaped.pk == stale.pk
    assert failed.json["data"]["error"]["code"] == "run_abandoned"


async def test_another_organizations_events_are_not_sent_to_this_one(
    admin_user, other_org_owner, receiver, sweeper
):
    await subscribe(admin_user, receiver, ["deployment.stopped"])
    theirs, _ = await sync_to_async(deploy)(other_org_owner, name="theirs")
    await sync_to_async(deployment_stop)(user=other_org_owner, deployment=theirs)
    await asyncio.sleep(0.5)
    assert receiver.received == []
    assert not await WebhookDelivery.objects.filter(webhook__organization=admin_user.organization).aexists()


# --- retries, failures, restarts -------------------------------------------------------------------


async def test_a_500_is_retried_and_then_delivered_with_every_attempt_listed(admin_user, receiver, sweeper):
    webhook = await subscribe(admin_user, receiver, ["deployment.stopped"])
    receiver.answer(500, 503)
    deployment, _ = await sync_to_async(deploy)(admin_user, name="flaky")
    await sync_to_async(deployment_stop)(user=admin_user, deployment=deployment)

    arrived = await receiver.wait_for(3, event="deployment.stopped")
    assert [received.status for received in arrived] == [500, 503, 200]
    assert len({received.delivery_id for received in arrived}) == 1  # one delivery, three attempts
    assert all(received.signature_valid for received in arrived)
    [delivery] = await settled(webhook, 1)
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.status_code == 200

    api = await sync_to_async(client_for)(admin_user)
    listed = (await sync_to_async(api.get)(f"/api/webhooks/{webhook.pk}/deliveries")).json()
    [row] = listed["results"]
    assert row["status"] == "delivered" and row["attempts"] == 3
    assert [attempt["status_code"] for attempt in row["attempt_log"]] == [500, 503, 200]
    assert row["attempt_log"][0]["error"] == "HTTP 500"


async def test_repeated_failure_disables_the_webhook_with_a_system_audit_row(admin_user, receiver, sweeper):
    webhook = await subscribe(admin_user, receiver, ["deployment.stopped"])
    receiver.answer(*[500] * 6)  # two deliveries of three attempts each
    for name in ("down-1", "down-2"):
        deployment, _ = await sync_to_async(deploy)(admin_user, name=name)
        await sync_to_async(deployment_stop)(user=admin_user, deployment=deployment)
        await settled(webhook, 1 if name == "down-1" else 2)

    deliveries = await deliveries_of(webhook)
    assert [(d.status, d.attempts) for d in deliveries] == [("failed", 3), ("failed", 3)]
    assert len(receiver.received) == 6
    await webhook.arefresh_from_db()
    assert not webhook.is_active and webhook.consecutive_failures == 2
    assert webhook.disabled_reason == "2 deliveries in a row failed"
    audit = await AuditLog.objects.aget(model_name="Webhook", operation_type="disable", record_id=webhook.pk)
    assert (
        audit.user_id is None
        and audit.actor_email == ""
        and audit.changes["reason"] == webhook.disabled_reason
    )

    third, _ = await sync_to_async(deploy)(admin_user, name="down-3")  # disabled: nothing more is sent
    await sync_to_async(deployment_stop)(user=admin_user, deployment=third)
    await asyncio.sleep(0.4)
    assert len(receiver.received) == 6 and len(await deliveries_of(webhook)) == 2


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(admin_user, receiver, sweeper, settings):
    settings.WEBHOOK_RETRY_DELAYS_S = []
    webhook = await subscribe(admin_user, receiver, ["deployment.stopped"])
    receiver.answer(302)
    deployment, _ = await sync_to_async(deploy)(admin_user, name="moved")
    await sync_to_async(deployment_stop)(user=admin_user, deployment=deployment)
    [delivery] = await settled(webhook, 1)
    assert delivery.status == "failed" and delivery.status_code == 302
    assert "redirects are not followed" in delivery.error
    assert len(receiver.received) == 1  # the Location was never requested


async def test_the_ssrf_rules_hold_at_each_attempt_too(admin_user, receiver, settings):
    # Stored while the host was allowed (or resolved elsewhere); refused when it is sent.
    url = f"https://localhost:{receiver.port}/hooks/studio"
    webhook = await sync_to_async(make_webhook)(admin_user.organization, url=url)
    await sync_to_async(make_delivery)(webhook)
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    settings.WEBHOOK_SWEEP_EVERY_S = 0.2
    webhook_sweeping_start()
    try:
        [delivery] = await _first_attempted(webhook)
    finally:
        await webhook_sweeping_stop()
    assert delivery.attempts >= 1 and delivery.status_code is None
    assert delivery.error.startswith("refused:") and "resolves to" in delivery.error
    assert receiver.received == []


async def _first_attempted(webhook: Webhook, timeout_s: float = 10.0) -> list[WebhookDelivery]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        deliveries = await deliveries_of(webhook)
        if all(d.attempts for d in deliveries) or asyncio.get_running_loop().time() > deadline:
            return deliveries
        await asyncio.sleep(0.02)


async def test_due_deliveries_left_by_a_stopped_process_are_sent_when_a_sweeper_starts(admin_user, receiver):
    """What a restart does: the deliveries are in the database, due; the new process sends them."""
    webhook = await sync_to_async(make_webhook)(admin_user.organization, url=receiver.url)
    receiver.secret = "whsec_test-secret"
    left = await sync_to_async(make_delivery)(webhook, event="run.completed")
    assert receiver.received == []
    webhook_sweeping_start()
    try:
        [arrived] = await receiver.wait_for(1)
        [left] = await settled(webhook, 1)
    finally:
        await webhook_sweeping_stop()
    assert arrived.delivery_id == left.pk and arrived.signature_valid
    assert left.status == "delivered" and left.attempts == 1
