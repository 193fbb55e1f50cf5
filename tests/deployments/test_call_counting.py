"""A deployment call is counted once, when its run ends, whether the caller waited for it or
started it with `?async=1` (the run's `on_finished`)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from prometheus_client import REGISTRY

from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.deployments.helpers import GOOD, INPUTS, bearer, deploy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]


def counted(outcome: str) -> float:
    sample = REGISTRY.get_sample_value(
        "studio_deployment_requests_total", {"channel": "api", "outcome": outcome}
    )
    return sample or 0.0


async def call(name: str, key: str, suffix: str = ""):
    return await AsyncClient().post(
        f"/workflows/{name}/execute{suffix}",
        json.dumps({"inputs": INPUTS}),
        content_type="application/json",
        headers=bearer(key),
    )


async def counted_becomes(outcome: str, value: float) -> None:
    for _ in range(500):
        if counted(outcome) == value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{outcome} stayed at {counted(outcome)}, expected {value}")


@pytest.mark.parametrize("suffix", ["", "?async=1"])
async def test_a_call_is_counted_once_when_its_run_ends(admin_user, suffix):
    completed, failed = counted("completed"), counted("failed")
    _, key = await sync_to_async(deploy)(admin_user, name="support")
    assert (await call("support", key, suffix)).status_code in (200, 202)
    await counted_becomes("completed", completed + 1)

    broke = await sync_to_async(make_agent)(
        admin_user.organization,
        support_yaml(responses=[{"response": GOOD}], config_extra="  budget_limit_usd: 0.0000001"),
    )
    _, broke_key = await sync_to_async(deploy)(admin_user, broke, name="broke")
    assert (await call("broke", broke_key, suffix)).status_code in (402, 202)
    await counted_becomes("failed", failed + 1)
    await asyncio.sleep(0.2)
    assert (counted("completed"), counted("failed")) == (completed + 1, failed + 1)


def approving_deployment(user, name: str) -> str:
    """A deployed orchestration whose first step waits for an approval: its key."""
    from deployments.services import deployment_create
    from tests.deployments.helpers import answering_agent
    from tests.orchestrations.helpers import make_orchestration

    first = answering_agent(user.organization, name="First")
    second = answering_agent(user.organization, name="Second")
    orchestration = make_orchestration(
        user.organization, "sequential", [first, second], config_yaml="approval: {after: 0}"
    )
    _, key = deployment_create(user=user, orchestration_id=orchestration.pk, name=name)
    return key


async def waiting_call(admin_user, name: str):
    """A call to an approving deployment: its run, waiting, and the approval it waits for."""
    from observability.models import Run
    from orchestrations.models import Approval

    key = await sync_to_async(approving_deployment)(admin_user, name)
    response = await call(name, key)
    assert response.status_code == 202 and response.json()["status"] == "waiting", response.content
    run = await Run.objects.aget(pk=response.json()["run_id"])
    return run, await Approval.objects.aget(run=run)


async def test_a_call_whose_run_waits_is_counted_once_when_it_ends_after_the_approval(admin_user):
    """Inline, the execution that pauses ends without the call's hook, and the decision resumes the
    run in another task (perhaps another process): the hook comes from the run's row."""
    from orchestrations.approvals import approval_decide

    completed = counted("completed")
    run, approval = await waiting_call(admin_user, "approved")
    await asyncio.sleep(0.2)
    assert counted("completed") == completed  # waiting: not ended, not counted

    await sync_to_async(approval_decide)(user=admin_user, approval=approval, decision="approve")

    await run.arefresh_from_db()
    assert run.status == "completed", run.error
    await counted_becomes("completed", completed + 1)
    await asyncio.sleep(0.2)
    assert counted("completed") == completed + 1


async def test_a_call_whose_waiting_run_is_cancelled_is_counted_failed(admin_user):
    from observability.supervisor import run_cancel

    failed = counted("failed")
    run, _ = await waiting_call(admin_user, "cancelled")

    assert await sync_to_async(run_cancel)(run)

    await run.arefresh_from_db()
    assert run.status == "cancelled"
    await counted_becomes("failed", failed + 1)
