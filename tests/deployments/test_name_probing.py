"""Deployment names cannot be probed: without one of a deployment's keys, an existing name (running
or stopped) and a name nobody deployed get the same answer, on every HTTP route and on MCP."""

from __future__ import annotations

import json

import httpx
import pytest
from asgiref.sync import sync_to_async

from deployments.services import deployment_stop
from studio.asgi import application
from tests.deployments.helpers import INPUTS, bearer, deploy
from tests.deployments.test_channels import MCP_HEADERS, MCP_INITIALIZE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

RUN_ID = "run-" + "0" * 32
BODY = json.dumps({"inputs": INPUTS})


async def answers(name: str, headers: dict[str, str]) -> list[tuple[int, str, str | None]]:
    """(status, body, WWW-Authenticate) of every route of deployment `name` for these headers."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1"
    ) as http:
        responses = [
            await http.post(f"/workflows/{name}/execute", content=BODY, headers=headers),
            await http.get(f"/workflows/{name}", headers=headers),
            await http.get(f"/workflows/{name}/runs/{RUN_ID}", headers=headers),
            await http.get(f"/workflows/{name}/runs/{RUN_ID}/events", headers=headers),
            await http.post(f"/mcp/{name}", json=MCP_INITIALIZE, headers={**MCP_HEADERS, **headers}),
        ]
    return [(r.status_code, r.text, r.headers.get("WWW-Authenticate")) for r in responses]


async def test_a_wrong_key_for_a_deployment_and_any_key_for_a_missing_name_answer_alike(admin_user):
    deployment, key = await sync_to_async(deploy)(admin_user, name="support")
    _, other_key = await sync_to_async(deploy)(admin_user, name="other-bot")
    wrong = bearer(key[:-4] + "AAAA")

    existing = await answers("support", wrong)
    assert {status for status, _, _ in existing} == {401}
    assert await answers("no-such-bot", wrong) == existing
    assert await answers("no-such-bot", bearer(key)) == existing  # a real key, on a name that is free
    assert await answers("no-such-bot", bearer(other_key)) == existing
    assert await answers("no-such-bot", {"X-API-Key": "not-even-a-key"}) == existing

    assert await answers("no-such-bot", {}) == await answers("support", {})  # no key at all

    await sync_to_async(deployment_stop)(user=admin_user, deployment=deployment)
    assert await answers("support", wrong) == existing  # stopped, to anyone without its key
