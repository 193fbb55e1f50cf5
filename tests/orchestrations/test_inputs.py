"""An orchestration's inputs are checked once, the same way, on every entry point (REST execute, the
WebSocket stream, a deployment's HTTP endpoint and its MCP tool), before any run exists. Its input
fields are its first agent's, less those the pattern fills itself."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from deployments.pinning import pinned_of
from deployments.services import deployment_create
from observability.models import Run
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401
from tests.conftest import client_for
from tests.deployments.helpers import bearer
from tests.deployments.test_mcp import session_calls
from tests.orchestrations.helpers import make_agent, make_orchestration, says

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

TYPO = {"msg": "typo"}


def execute(user, orchestration, inputs):
    return client_for(user).post(
        f"/api/orchestrations/{orchestration.pk}/execute", {"input": inputs}, format="json"
    )


def refusal(response) -> dict:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    return error


def _router(organization):
    """A router whose agents all take a required `text` input."""
    agents = [make_agent(organization, name) for name in ("Triage", "Billing", "Shipping")]
    return make_orchestration(organization, "router", agents, name="Triage desk")


async def test_a_missing_required_input_is_the_same_400_on_every_entry_point(admin_user):
    orchestration = await sync_to_async(_router)(admin_user.organization)

    error = refusal(await sync_to_async(execute)(admin_user, orchestration, TYPO))
    assert error["fields"] == {"text": "this input is required"}

    communicator, _, _ = await open_communicator(
        f"/api/orchestrations/{orchestration.pk}/stream", user=admin_user
    )
    await communicator.send_json_to({"type": "execute", "input": TYPO})
    assert await communicator.receive_json_from() == {"type": "error", "error": error}

    _, key = await sync_to_async(deployment_create)(
        user=admin_user, orchestration_id=orchestration.pk, name="triage"
    )
    served = await AsyncClient().post(
        "/workflows/triage/execute",
        json.dumps({"inputs": TYPO}),
        content_type="application/json",
        headers=bearer(key),
    )
    assert refusal(served) == error

    _, (tool_result,) = await session_calls("triage", key, [TYPO])
    assert tool_result.isError
    assert json.loads(tool_result.content[0].text)["error"] == error

    assert not await Run.objects.aexists()


def test_inputs_are_conformed_and_extra_fields_pass_on_to_the_pattern(admin_user):
    org = admin_user.organization
    first = make_agent(org, "First", inputs=["text"], responses=[says(answer="ok")])
    second = make_agent(org, "Second", inputs=["text"], responses=[says(answer="done")])
    orchestration = make_orchestration(org, "sequential", [first, second])

    error = refusal(execute(admin_user, orchestration, {"text": 42}))
    assert error["fields"] == {"text": "expected a string, got an integer"}

    response = execute(admin_user, orchestration, {"text": "Hello", "audience": "Engineers"})
    assert response.status_code == 200, response.content
    assert Run.objects.get().input == {"text": "Hello", "audience": "Engineers"}


def test_a_debate_asks_the_caller_for_the_debaters_inputs_but_not_the_brief_it_writes(admin_user):
    org = admin_user.organization
    agents = [
        make_agent(org, name, inputs=["brief", "audience"], responses=[says(answer="x", winner="Pro")])
        for name in ("Pro", "Con", "Judge")
    ]
    orchestration = make_orchestration(org, "debate", agents, config_yaml="rounds: 1\n")
    deployment, _ = deployment_create(user=admin_user, orchestration_id=orchestration.pk)

    error = refusal(execute(admin_user, orchestration, {"topic": "Remote work?"}))
    assert error["fields"] == {"audience": "this input is required"}
    assert pinned_of(deployment).input_schema["required"] == ["audience"]

    response = execute(admin_user, orchestration, {"topic": "Remote work?", "audience": "Managers"})
    assert response.status_code == 200, response.content


def test_a_sequential_mapping_asks_for_the_inputs_it_reads(admin_user):
    org = admin_user.organization
    writer = make_agent(org, "Writer", inputs=["brief"], responses=[says(answer="draft")])
    editor = make_agent(org, "Editor", inputs=["draft", "audience"], responses=[says(answer="edited")])
    mapping = "mapping: [{brief: input.topic}, {draft: answer, audience: input.audience}]\n"
    orchestration = make_orchestration(org, "sequential", [writer, editor], config_yaml=mapping)

    error = refusal(execute(admin_user, orchestration, {"brief": "not what the mapping reads"}))
    assert error["fields"] == {
        "topic": "this input is required",
        "audience": "this input is required",
    }
    assert not Run.objects.exists()  # refused before the writer ran, not when the editor's turn came

    response = execute(admin_user, orchestration, {"topic": "Tides", "audience": "Children"})
    assert response.status_code == 200, response.content
