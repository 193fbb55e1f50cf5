"""A waiting run holds no process: the run starts on one daphne server, waits for the approval of
its MCP tool call, that server stops, and a decision made through another server (on the same
database) resumes it there; the tool is called exactly once (counted on the fake MCP server)."""

from __future__ import annotations

import httpx
import pytest

from accounts.services import tokens_for
from observability.models import Run, RunEvent
from orchestrations.models import Approval
from tests.agents.test_tool_approval import GOOD, INQUIRY, LOOKUP, approving_agent
from tests.fakes.behaviours import json_answer, tool_calls
from tests.live import DaphneServer
from tests.providers.factories import make_provider_config

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

SERVER_ENV = {"STUDIO_ALLOW_PRIVATE_PROVIDER_URLS": "1", "STUDIO_REAP_EVERY_S": "0"}


def client_of(server: DaphneServer, user) -> httpx.Client:
    token = tokens_for(user)["access"]
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_an_approval_resumes_the_run_on_another_server_and_the_tool_runs_once(
    member, fake_openai, fake_mcp, settings, django_db_blocker
):
    from tests.agents.factories import make_mcp_server

    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    make_provider_config(member.organization, api_base_url=fake_openai.base_url, is_default=True)
    server = make_mcp_server(member.organization, url=fake_mcp.url, headers=fake_mcp.headers, name="Orders")
    agent = approving_agent(member.organization, server)
    fake_openai.enqueue(tool_calls(LOOKUP), json_answer(GOOD))

    first = DaphneServer(extra_env=SERVER_ENV)
    try:
        with client_of(first, member) as http:
            started = http.post(f"/api/agents/{agent.pk}/test", json={"input": INQUIRY})
    finally:
        first.stop()
    assert started.status_code == 202, started.text
    run_id, approval_id = started.json()["run_id"], started.json()["approval_id"]
    assert Run.objects.get(pk=run_id).status == Run.Status.WAITING
    assert fake_mcp.calls == []

    second = DaphneServer(extra_env=SERVER_ENV)
    try:
        with client_of(second, member) as http:
            pending = http.get("/api/approvals", params={"status": "pending"}).json()["results"]
            assert [row["id"] for row in pending] == [approval_id]
            decided = http.post(f"/api/approvals/{approval_id}", json={"decision": "approve"})
            assert decided.status_code == 200, decided.text
            run = _finished(http, run_id)
    finally:
        second.stop()

    assert run["status"] == "completed", run
    assert [(call.tool, call.arguments) for call in fake_mcp.calls] == [("lookup_order", {"order_id": "42"})]
    assert Run.objects.get(pk=run_id).output == GOOD
    assert len(fake_openai.requests) == 2  # the turn before the wait is not asked again
    assert Approval.objects.get(pk=approval_id).decided_by_id == member.pk
    seqs = list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def _finished(http: httpx.Client, run_id: str) -> dict:
    """The run once it ended (the resume runs in the background of the server that got the decision)."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = http.get(f"/api/traces/{run_id}").json()
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"the run did not finish: {run}")
