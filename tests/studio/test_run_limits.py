"""An organization may have at most MAX_ACTIVE_RUNS_PER_ORG runs in progress: a run started past
that is refused with 429 `too_many_active_runs` and Retry-After on every channel (REST, WebSocket,
deployments), while other organizations run as usual."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from rest_framework.test import APIClient

from observability.limits import RETRY_AFTER_S, RunLimitReached, run_admit
from observability.models import Run
from observability.supervisor import RunDraft, RunOutcome, run_start
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401
from tests.conftest import client_for
from tests.deployments.helpers import INPUTS, bearer, deploy
from tests.observability.factories import queued_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

GOOD = {"response": "We will refund you today.", "priority": "high"}
BODY = {"input": {"inquiry": "Refund?"}}


def quick_agent(organization):
    return make_agent(organization, support_yaml(responses=[{"response": GOOD}]))


def slow_agent(organization):
    return make_agent(
        organization, support_yaml(responses=[{"response": GOOD}], extra_provider="  latency_ms: 1500")
    )


def assert_too_many_runs(response, limit: int) -> None:
    assert response.status_code == 429, response.content
    assert response["Retry-After"] == str(RETRY_AFTER_S)
    error = response.json()["error"]
    assert error["code"] == "too_many_active_runs" and str(limit) in error["message"]
    assert error["fields"] == {"limit": limit}


async def receive_until(communicator, final_types, timeout=10):
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        if frame["type"] in final_types:
            return frame


async def test_an_organization_at_its_cap_gets_429_on_a_new_run_while_another_organization_runs(
    settings, member, other_org_owner
):
    settings.MAX_ACTIVE_RUNS_PER_ORG = 1
    slow = await sync_to_async(slow_agent)(member.organization)
    quick = await sync_to_async(quick_agent)(member.organization)
    streaming, connected, _ = await open_communicator(f"/api/agents/{slow.pk}/stream", user=member)
    assert connected
    await streaming.send_json_to({"type": "execute", "input": {"inquiry": "Refund?"}})
    await receive_until(streaming, ("run.started",))  # one run in progress: the cap

    client = await sync_to_async(client_for)(member)
    refused = await sync_to_async(client.post)(f"/api/agents/{quick.pk}/test", BODY, format="json")
    assert_too_many_runs(refused, 1)

    # A second socket of the same organization is refused the same way, in an error frame.
    second, _, _ = await open_communicator(f"/api/agents/{quick.pk}/stream", user=member)
    await second.send_json_to({"type": "execute", "input": {"inquiry": "Refund?"}})
    frame = await second.receive_json_from()
    assert frame["type"] == "error" and frame["error"]["code"] == "too_many_active_runs"

    other_agent = await sync_to_async(quick_agent)(other_org_owner.organization)
    other_client = await sync_to_async(client_for)(other_org_owner)
    other = await sync_to_async(other_client.post)(f"/api/agents/{other_agent.pk}/test", BODY, format="json")
    assert other.status_code == 200, other.content

    # Once the run in progress has finished, the organization runs again.
    assert (await receive_until(streaming, ("run.completed", "run.failed")))["type"] == "run.completed"
    accepted = await sync_to_async(client.post)(f"/api/agents/{quick.pk}/test", BODY, format="json")
    assert accepted.status_code == 200, accepted.content
    assert await Run.objects.filter(organization_id=member.organization_id).acount() == 2


def test_orchestration_executes_and_deployment_calls_count_against_the_same_cap(settings, admin_user):
    from tests.orchestrations.helpers import make_agent as make_team_agent
    from tests.orchestrations.helpers import make_orchestration, says

    settings.MAX_ACTIVE_RUNS_PER_ORG = 2
    organization = admin_user.organization
    for _ in range(2):  # two runs in progress of the organization (another process may run them)
        run = queued_run(organization_id=organization.pk, user_id=None, kind="agent_test", input={})
        Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)

    team = [make_team_agent(organization, f"A{n}", responses=[says(answer="ok")]) for n in range(2)]
    orchestration = make_orchestration(organization, "sequential", team)
    client = client_for(admin_user)
    executed = client.post(
        f"/api/orchestrations/{orchestration.pk}/execute", {"input": {"text": "go"}}, format="json"
    )
    assert_too_many_runs(executed, 2)

    _, key = deploy(admin_user, name="capped")
    caller = APIClient()  # a caller with a deployment key, no studio user
    called = caller.post("/workflows/capped/execute", {"inputs": INPUTS}, format="json", headers=bearer(key))
    assert_too_many_runs(called, 2)
    assert Run.objects.filter(organization=organization).count() == 2  # nothing was stored

    Run.objects.filter(organization=organization).update(status=Run.Status.COMPLETED)
    called = caller.post("/workflows/capped/execute", {"inputs": INPUTS}, format="json", headers=bearer(key))
    assert called.status_code == 200, called.content


def test_simultaneous_starts_never_exceed_the_cap(settings, member):
    """Each start in its own thread and database connection, all at once."""
    settings.MAX_ACTIVE_RUNS_PER_ORG = 3

    def start(_):
        try:
            run_admit(
                RunDraft(organization_id=member.organization_id, user_id=None, kind="agent_test", input={})
            )
            return True
        except RunLimitReached:
            return False
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(start, range(20)))
    assert outcomes.count(True) == 3
    assert Run.objects.filter(organization_id=member.organization_id).count() == 3


class Starts:
    """Starts of runs whose work holds them in progress until every start has been decided, so that
    the runs admitted are the runs in progress together."""

    def __init__(self, organization_id: str, total: int):
        self.organization_id, self.total = organization_id, total
        self.decided = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def _decide(self) -> None:
        with self.lock:
            self.decided += 1
            if self.decided == self.total:
                self.release.set()

    async def _held(self, recorder, root_span_id) -> RunOutcome:
        self._decide()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return RunOutcome(output={})

    async def start(self) -> bool:
        draft = RunDraft(organization_id=self.organization_id, user_id=None, kind="agent_test", input={})
        try:
            await run_start(draft, self._held, name="capped")
            return True
        except RunLimitReached:
            self._decide()
            return False

    async def many(self, count: int) -> list[bool]:
        return await asyncio.gather(*(self.start() for _ in range(count)))


@pytest.mark.usefixtures("ledger_group_commit")
async def test_simultaneous_run_starts_in_one_process_never_exceed_the_cap(settings, member):
    """Admitted by their first ledger write: starts sharing a transaction see each other's runs."""
    settings.MAX_ACTIVE_RUNS_PER_ORG = 3
    outcomes = await Starts(member.organization_id, 12).many(12)
    assert outcomes.count(True) == 3
    assert await Run.objects.filter(organization_id=member.organization_id).acount() == 3


@pytest.mark.usefixtures("ledger_group_commit")
def test_simultaneous_run_starts_of_several_processes_never_exceed_the_cap(settings, member):
    """Four event loops, each in its own thread with its own database connection and group commit
    (as server processes are), starting five runs each at once."""
    settings.MAX_ACTIVE_RUNS_PER_ORG = 3
    starts = Starts(member.organization_id, 20)

    def process(_) -> list[bool]:
        try:
            return async_to_sync(starts.many)(5)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = [outcome for outcomes in pool.map(process, range(4)) for outcome in outcomes]
    assert outcomes.count(True) == 3
    assert Run.objects.filter(organization_id=member.organization_id).count() == 3
