"""Errors tell clients nothing internal: an unexpected exception inside a run reaches the deployment
caller, the spans, the events and an orchestration's `outputs.errors` as a generic message with an
error id; the exception's text is only in the server log, under the same id."""

from __future__ import annotations

import json
import logging
import re

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from deployments.services import deployment_create
from observability import metrics
from observability.models import Run, RunEvent, Span
from orchestrations.services import orchestration_create
from providers.llm.types import ProviderSettings
from tests.deployments.helpers import GOOD, INPUTS, answering_agent, bearer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

SECRET = "postgres://studio:hunter2-s3cr3t@10.0.0.5/ledger"
BROKEN_MODEL = "mock-broken"
ERROR_ID = re.compile(r"err-[0-9a-f]{32}")


@pytest.fixture
def broken_metrics_backend(monkeypatch):
    """The metrics backend (prometheus_client) fails after each call of BROKEN_MODEL answered, with
    a message quoting a secret: an exception none of our code expects, raised inside a run."""
    labels = metrics.LLM_CALLS.labels

    def failing_labels(*args, **kwargs):
        if kwargs.get("model") == BROKEN_MODEL and kwargs.get("outcome") == "completed":
            raise RuntimeError(f"metrics store {SECRET} refused the sample")
        return labels(*args, **kwargs)

    monkeypatch.setattr(metrics.LLM_CALLS, "labels", failing_labels)


async def execute(name: str, key: str):
    return await AsyncClient().post(
        f"/workflows/{name}/execute",
        json.dumps({"inputs": INPUTS}),
        content_type="application/json",
        headers=bearer(key),
    )


async def everything_stored_about(run_id: str) -> str:
    run = await Run.objects.aget(pk=run_id)
    spans = [(s.error, s.attributes) async for s in Span.objects.filter(run_id=run_id)]
    events = [e.data async for e in RunEvent.objects.filter(run_id=run_id)]
    return json.dumps({"run": [run.error, run.output], "spans": spans, "events": events}, default=str)


async def test_an_unexpected_failure_reaches_the_caller_as_a_generic_message_and_an_error_id(
    admin_user, broken_metrics_backend, caplog
):
    agent = await sync_to_async(answering_agent)(admin_user.organization, model=BROKEN_MODEL)
    _, key = await sync_to_async(deployment_create)(user=admin_user, agent_id=agent.pk, name="support")

    with caplog.at_level(logging.ERROR):
        response = await execute("support", key)

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert SECRET not in response.content.decode() and "hunter2" not in response.content.decode()
    (error_id,) = ERROR_ID.findall(error["message"])
    run_id = error["fields"]["run_id"]

    (agent_span,) = [s async for s in Span.objects.filter(run_id=run_id, kind="agent")]
    assert agent_span.status == "failed" and ERROR_ID.findall(agent_span.error) == [error_id]
    (failed,) = [e async for e in RunEvent.objects.filter(run_id=run_id, type="agent.failed")]
    assert failed.data["code"] == "internal_error" and ERROR_ID.findall(failed.data["message"]) == [error_id]
    stored = await everything_stored_about(run_id)
    assert "hunter2" not in stored and "RuntimeError" not in stored

    (logged,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged.exc_info and SECRET in str(logged.exc_info[1])


async def test_an_orchestration_that_goes_on_past_a_broken_agent_shows_only_an_error_id_in_its_errors(
    admin_user, broken_metrics_backend, caplog
):
    organization = admin_user.organization
    working = await sync_to_async(answering_agent)(organization, name="Working")
    broken = await sync_to_async(answering_agent)(organization, name="Broken", model=BROKEN_MODEL)
    orchestration = await sync_to_async(orchestration_create)(
        user=admin_user,
        name="Both",
        pattern="parallel",
        agent_ids=[working.pk, broken.pk],
        config_yaml="on_agent_error: continue\n",
    )
    _, key = await sync_to_async(deployment_create)(
        user=admin_user, orchestration_id=orchestration.pk, name="both"
    )

    with caplog.at_level(logging.ERROR):
        response = await execute("both", key)

    assert response.status_code == 200, response.json()
    outputs = response.json()["outputs"]
    assert outputs["outputs"]["Working"] == GOOD
    (error_id,) = ERROR_ID.findall(outputs["errors"]["Broken"])
    assert "failed unexpectedly" in outputs["errors"]["Broken"]
    assert "hunter2" not in response.content.decode()
    assert "hunter2" not in await everything_stored_about(response.json()["run_id"])
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_provider_settings_never_show_the_key():
    settings = ProviderSettings(kind="openai", api_key="sk-live-very-secret-key-1234")
    assert "sk-live" not in repr(settings) and "sk-live" not in str(settings)
    assert settings.api_key == "sk-live-very-secret-key-1234"
