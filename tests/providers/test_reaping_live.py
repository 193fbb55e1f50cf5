"""Every server process reaps runs whose process died, while it serves: a server killed mid-run
and a new one started on the same database right away (as systemd or a container would)."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from accounts.services import tokens_for
from observability.models import Run, RunEvent, Span
from providers.models import BudgetCounter
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.deployments.helpers import INPUTS, bearer
from tests.live import DaphneServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

REAPED_WITHIN_S = 60


def _wait_for(condition, *, within_s: float, what: str):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (value := condition()) is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {within_s} s: {what}")


def test_a_run_of_a_killed_server_is_failed_by_the_next_one_while_it_serves(admin_user):
    slow = support_yaml(extra_provider="  latency_ms: 15000", config_extra="  budget_limit_usd: 5")
    agent = make_agent(admin_user.organization, slow)
    token = tokens_for(admin_user)["access"]
    first = DaphneServer()
    try:
        deployed = httpx.post(
            f"{first.url}/api/deploy",
            json={"agent_id": agent.pk, "name": "slow"},
            headers=bearer(token),
            timeout=20,
        )
        key = deployed.json()["api_key"]
        accepted = httpx.post(
            f"{first.url}/workflows/slow/execute?async=1",
            json={"inputs": INPUTS},
            headers=bearer(key),
            timeout=20,
        )
        run_id = accepted.json()["run_id"]
        _wait_for(
            lambda: Span.objects.filter(run_id=run_id, kind="llm", ended_at__isnull=True).first(),
            within_s=20,
            what="the run's LLM call is in flight",
        )
        assert BudgetCounter.objects.get(subject=agent.pk).reserved_usd > 0
    finally:
        first.process.kill()  # SIGKILL: nothing of the run is finished by the dying process
        first.process.wait()
        first.stop()
    assert Run.objects.get(pk=run_id).status == "running"

    second = DaphneServer()  # default reaping: every 10 s, runs 30 s without a heartbeat
    try:
        status = _wait_for(
            lambda: (run := Run.objects.get(pk=run_id)).status != "running" and run or None,
            within_s=REAPED_WITHIN_S,
            what="the dead process's run is failed",
        )
        assert status.error["code"] == "run_abandoned"
        runtime = httpx.get(f"{second.url}/api/runtime/status", headers=bearer(token), timeout=20).json()
        assert runtime["active_runs"] == 0
    finally:
        second.stop()

    last = RunEvent.objects.filter(run_id=run_id).order_by("seq").last()
    assert last.type == "run.failed" and last.data["error"]["code"] == "run_abandoned"
    assert not Span.objects.filter(run_id=run_id, ended_at__isnull=True).exists()
    assert BudgetCounter.objects.get(subject=agent.pk).reserved_usd == Decimal(0)
