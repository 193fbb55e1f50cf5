"""Webhooks on real daphne processes: the server's sweeper sends what its requests record (an
async deployment call's run, a sync view's deployment stop), and a delivery whose process stopped
between two attempts is sent by the next server that starts."""

from __future__ import annotations

import time

import httpx
import pytest

from accounts.services import tokens_for
from deployments.models import WebhookDelivery
from tests.deployments.helpers import INPUTS, answering_agent, bearer
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.live import DaphneServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

TIMEOUT_S = 20


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def wait_received(receiver: WebhookReceiver, count: int) -> list:
    deadline = time.monotonic() + TIMEOUT_S
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(receiver.received)


def admin_api(server, admin_user) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=bearer(tokens_for(admin_user)["access"]), timeout=30)


def subscribe_and_deploy(api, admin_user, receiver, events) -> dict:
    hook = api.post("/api/webhooks", json={"url": receiver.url, "events": events})
    assert hook.status_code == 201, hook.text
    receiver.secret = hook.json()["secret"]
    agent = answering_agent(admin_user.organization)
    deployed = api.post("/api/deploy", json={"agent_id": agent.pk})
    assert deployed.status_code == 201, deployed.text
    return deployed.json()


def test_the_server_sends_a_calls_run_and_a_stop_at_once(daphne_server, admin_user, receiver):
    with admin_api(daphne_server, admin_user) as api:
        deployed = subscribe_and_deploy(api, admin_user, receiver, ["run.completed", "deployment.stopped"])
        called = httpx.post(
            f"{daphne_server.url}/workflows/{deployed['name']}/execute",
            json={"inputs": INPUTS},
            headers=bearer(deployed["api_key"]),
            timeout=30,
        )
        assert called.status_code == 200, called.text
        assert api.delete(f"/api/deployments/{deployed['deployment_id']}").status_code == 200
        got = wait_received(receiver, 2)
    assert sorted(received.event for received in got) == ["deployment.stopped", "run.completed"]
    assert all(received.signature_valid for received in got)
    run_completed = next(received for received in got if received.event == "run.completed")
    assert run_completed.json["data"]["run_id"] == called.json()["run_id"]


def test_a_retry_left_by_a_stopped_server_is_made_by_the_next_one(admin_user, receiver):
    env = {
        "STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1",
        "STUDIO_REAP_EVERY_S": "0",
        "STUDIO_WEBHOOK_RETRY_DELAYS_S": "3",
    }
    receiver.answer(500)
    first = DaphneServer(extra_env=env)
    try:
        with admin_api(first, admin_user) as api:
            deployed = subscribe_and_deploy(api, admin_user, receiver, ["deployment.stopped"])
            assert api.delete(f"/api/deployments/{deployed['deployment_id']}").status_code == 200
        [failed] = wait_received(receiver, 1)
    finally:
        first.stop()  # before the retry is due
    assert failed.status == 500
    delivery = WebhookDelivery.objects.get(pk=failed.delivery_id)
    assert delivery.status == "pending" and delivery.attempts == 1

    second = DaphneServer(extra_env=env)
    try:
        got = wait_received(receiver, 2)
    finally:
        second.stop()
    assert [received.status for received in got] == [500, 200]
    assert got[1].delivery_id == failed.delivery_id and got[1].signature_valid
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 2
