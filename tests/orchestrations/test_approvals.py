"""Step approvals: an orchestration step marked for approval pauses the run (`waiting`, no process
holds it) until a person decides through the API; approved, the run resumes and completes, each
agent called once; rejected, it ends cancelled with the reason; expired, its policy decides. And
the approvals API itself (scoping, roles, 409 once decided)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from observability.models import AuditLog, Run, RunEvent, Span
from orchestrations.approvals import approvals_expire
from orchestrations.models import Approval
from providers.aio import run_sync
from tests.api_cases import APIResourceCases, Call
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401
from tests.observability.factories import run as unsaved_run
from tests.orchestrations.helpers import make_agent, make_orchestration, says

pytestmark = pytest.mark.django_db(transaction=True)

APPROVALS = "/api/approvals"


def team(organization, pattern: str, config_yaml: str):
    # `escalate`: a handoff's tier passes the task on (other patterns ignore the extra field)
    writer = make_agent(organization, "Writer", responses=[says(answer="a draft", escalate=True)])
    editor = make_agent(organization, "Editor", responses=[says(answer="the final text")])
    return make_orchestration(organization, pattern, [writer, editor], config_yaml=config_yaml)


def execute(client, orchestration):
    return client.post(
        f"/api/orchestrations/{orchestration.pk}/execute", {"input": {"text": "hi"}}, format="json"
    )


def agent_calls(run_id: str) -> list[str]:
    """The agent calls made (not replayed): their spans, in order."""
    return list(
        Span.objects.filter(run_id=run_id, kind="agent").order_by("started_at").values_list("name", "status")
    )


def waiting_run(client, orchestration) -> tuple[Run, Approval]:
    response = execute(client, orchestration)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "waiting" and body["follow_url"] == f"/api/runs/{body['run_id']}/stream"
    run = Run.objects.get(pk=body["run_id"])
    assert run.status == Run.Status.WAITING and run.heartbeat_at is None
    (approval,) = Approval.objects.filter(run=run)
    assert body["approval_id"] == approval.pk
    return run, approval


@pytest.mark.parametrize(
    ("pattern", "after"),
    [("sequential", "0"), ("sequential", "1"), ("handoff", "0")],
)
def test_an_approved_step_resumes_the_run_to_completion(auth_client, member, pattern, after):
    orchestration = team(member.organization, pattern, f"approval: {{after: {after}}}")

    run, approval = waiting_run(auth_client, orchestration)

    requested = RunEvent.objects.get(run=run, type="approval.requested").data
    assert requested["kind"] == "step" and requested["approval_id"] == approval.pk
    first = after == "0"
    assert requested["subject"]["agent"] == ("Writer" if first else "Editor")
    assert requested["subject"]["output"]["answer"] == ("a draft" if first else "the final text")
    listed = auth_client.get(f"{APPROVALS}?status=pending").json()["results"]
    assert [row["id"] for row in listed] == [approval.pk]

    decided = auth_client.post(
        f"{APPROVALS}/{approval.pk}", {"decision": "approve", "comment": "ok"}, format="json"
    )

    assert decided.status_code == 200, decided.content
    assert decided.json()["status"] == "approved" and decided.json()["decided_by"] == member.pk
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    if pattern == "sequential":
        assert run.output["output"] == {"answer": "the final text"}
    writer_calls = [
        name for name, status in agent_calls(run.pk) if name == "Writer" and status == "completed"
    ]
    assert len(writer_calls) == 1  # replayed from the ledger on resume, not called again
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types.index("approval.requested") < types.index("run.waiting") < types.index("approval.resolved")
    assert types.index("approval.resolved") < types.index("run.resumed") < types.index("run.completed")
    seqs = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    audit = AuditLog.objects.get(operation_type="approval_approve", record_id=approval.pk)
    assert audit.user_id == member.pk and audit.changes["comment"] == "ok"
    assert auth_client.get(f"{APPROVALS}?status=pending").json()["results"] == []


def test_supervisor_worker_waits_for_each_worker_output_approved_by_role(auth_client, member):
    org = member.organization
    plan = says(answer="The combined report", subtasks=[{"worker": "Writer", "task": "Write the intro"}])
    lead = make_agent(org, "Lead", responses=[plan])
    intro = [says(answer="Intro")]
    writer = make_agent(org, "Writer", description="Writes", inputs=["task"], responses=intro)
    orchestration = make_orchestration(
        org, "supervisor_worker", [lead, writer], config_yaml="approval: {after: worker}"
    )
    run, approval = waiting_run(auth_client, orchestration)
    assert approval.subject["agent"] == "Writer" and approval.subject["output"] == {"answer": "Intro"}

    auth_client.post(f"{APPROVALS}/{approval.pk}", {"decision": "approve"}, format="json")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED, run.error
    assert run.output["subtasks"][0]["output"] == {"answer": "Intro"}
    made = [name for name, status in agent_calls(run.pk) if status == "completed"]
    assert sorted(made) == ["Lead", "Lead", "Writer"]  # plan, work, combine: each once


def test_a_role_asks_for_an_approval_after_each_agent_in_it(auth_client, member):
    orchestration = team(member.organization, "sequential", "approval: {after: step}")
    run, first = waiting_run(auth_client, orchestration)
    auth_client.post(f"{APPROVALS}/{first.pk}", {"decision": "approve"}, format="json")
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING  # now for the editor's output
    second = Approval.objects.get(run=run, status="pending")
    assert second.subject["agent"] == "Editor"

    auth_client.post(f"{APPROVALS}/{second.pk}", {"decision": "approve"}, format="json")

    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED and run.attempts == 1  # resumes are no attempts
    assert [status for _, status in agent_calls(run.pk)] == ["completed", "completed"]


def test_a_rejected_step_ends_the_run_cancelled_with_the_reason(auth_client, member):
    orchestration = team(member.organization, "sequential", "approval: {after: 0}")
    run, approval = waiting_run(auth_client, orchestration)

    decided = auth_client.post(
        f"{APPROVALS}/{approval.pk}", {"decision": "reject", "comment": "too informal"}, format="json"
    )

    assert decided.status_code == 200
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.error["code"] == "approval_rejected" and "too informal" in run.error["message"]
    assert [name for name, _ in agent_calls(run.pk)] == ["Writer"]  # the editor never ran
    again = auth_client.post(f"{APPROVALS}/{approval.pk}", {"decision": "approve"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "approval_decided"


@pytest.mark.parametrize(
    ("policy", "status", "code"),
    [("reject", "cancelled", "approval_rejected"), ("fail", "failed", "approval_expired")],
)
def test_an_overdue_step_approval_expires_by_its_policy(auth_client, member, policy, status, code):
    orchestration = team(
        member.organization, "sequential", f"approval: {{after: 0, timeout_s: 60, on_timeout: {policy}}}"
    )
    run, approval = waiting_run(auth_client, orchestration)
    assert approval.expires_at is not None and approval.on_timeout == policy

    assert run_sync(approvals_expire) == []  # not due yet
    expired = run_sync(approvals_expire, now=timezone.now() + dt.timedelta(seconds=61))

    assert [a.pk for a in expired] == [approval.pk]
    approval.refresh_from_db()
    assert approval.status == Approval.Status.EXPIRED and approval.decided_by is None
    run.refresh_from_db()
    assert run.status == status and run.error["code"] == code
    assert AuditLog.objects.filter(operation_type="approval_expire", record_id=approval.pk).count() == 1
    assert run_sync(approvals_expire, now=timezone.now() + dt.timedelta(seconds=61)) == []


def test_approval_config_is_validated_by_path(auth_client):
    writer = auth_client.post(
        "/api/orchestrations",
        {
            "name": "bad",
            "pattern": "sequential",
            "agent_ids": [],
            "config_yaml": "approval: {after: 5, on_timeout: later}",
        },
        format="json",
    )
    assert writer.status_code == 400


def test_another_organization_sees_no_approval(auth_client, member, other_client):
    orchestration = team(member.organization, "sequential", "approval: {after: 0}")
    run, approval = waiting_run(auth_client, orchestration)

    assert other_client.get(APPROVALS).json()["results"] == []
    assert other_client.get(f"{APPROVALS}/{approval.pk}").status_code == 404
    decided = other_client.post(f"{APPROVALS}/{approval.pk}", {"decision": "approve"}, format="json")
    assert decided.status_code == 404
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING


def test_a_decision_needs_a_known_decision(auth_client, member):
    orchestration = team(member.organization, "sequential", "approval: {after: 0}")
    _, approval = waiting_run(auth_client, orchestration)
    response = auth_client.post(f"{APPROVALS}/{approval.pk}", {"decision": "maybe"}, format="json")
    assert response.status_code == 400
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING


class TestApprovalAPI(APIResourceCases):
    list_path = APPROVALS
    detail_path = APPROVALS + "/{pk}"
    writes = (Call("POST", APPROVALS + "/{pk}", {"decision": "approve"}),)
    list_queries = 2  # the caller, the page with its count
    detail_queries = 2  # the caller, the approval

    def make(self, organization):
        run = unsaved_run(organization)
        run.save()
        return Approval.objects.create(
            organization=organization, run=run, key="approval:1.step/0", kind="step", subject={"output": {}}
        )


def test_webhooks_get_approval_requested_and_resolved_once(auth_client, member):
    from deployments.models import WebhookDelivery
    from tests.deployments.factories import make_webhook

    hook = make_webhook(member.organization, events=["approval.requested", "approval.resolved"])
    orchestration = team(member.organization, "sequential", "approval: {after: 0}")
    _, approval = waiting_run(auth_client, orchestration)

    auth_client.post(f"{APPROVALS}/{approval.pk}", {"decision": "approve"}, format="json")

    deliveries = WebhookDelivery.objects.filter(webhook=hook).order_by("created_at")
    assert [d.event for d in deliveries] == ["approval.requested", "approval.resolved"]
    resolved = deliveries[1].payload["data"]
    assert resolved["approval_id"] == approval.pk and resolved["status"] == "approved"


async def test_a_decision_made_before_the_run_recorded_its_pause_still_resumes_it(member, monkeypatch):
    """The approval is decided the instant it is asked (from a webhook receiver, say), while the
    run's execution is still ending (held here for 0.5 s before it records the pause): the
    decision waits for the pause, then resumes the run."""
    import asyncio

    from asgiref.sync import sync_to_async

    from observability import supervisor
    from observability.signals import ledger_event

    pause = supervisor._pause

    async def slow_pause(*args):
        await asyncio.sleep(0.5)
        await pause(*args)

    monkeypatch.setattr(supervisor, "_pause", slow_pause)
    from observability.supervisor import RunWaiting
    from orchestrations.approvals import approval_decide
    from orchestrations.runs import orchestration_start

    orchestration = await sync_to_async(team)(member.organization, "sequential", "approval: {after: 0}")
    deciding: list[asyncio.Task] = []

    async def decide_at_once(*, event, data, **kwargs):
        if event == "approval.requested":
            approval = await Approval.objects.aget(pk=data["approval_id"])
            decide = sync_to_async(approval_decide, thread_sensitive=False)
            deciding.append(asyncio.create_task(decide(user=member, approval=approval, decision="approve")))

    ledger_event.connect(decide_at_once, weak=False)
    try:
        with pytest.raises(RunWaiting) as waiting:
            await orchestration_start(user=member, orchestration=orchestration, inputs={"text": "hi"})
        await asyncio.gather(*deciding)
    finally:
        ledger_event.disconnect(decide_at_once)

    run = await Run.objects.aget(pk=waiting.value.run.pk)
    assert run.status == Run.Status.COMPLETED, run.error


def trace_statuses(client, run_id: str) -> list[tuple[str, str, str]]:
    """(kind, name, status) of every span of the run, as GET /api/traces/{id} shows them."""

    def walk(spans):
        for node in spans:
            yield node["kind"], node["name"], node["status"]
            yield from walk(node["children"])

    return list(walk(client.get(f"/api/traces/{run_id}").json()["spans"]))


@pytest.mark.parametrize(("decision", "status"), [("approve", "completed"), ("reject", "cancelled")])
def test_the_spans_that_waited_are_paused_once_the_run_goes_on(auth_client, member, decision, status):
    orchestration = team(member.organization, "sequential", "approval: {after: 0}")
    run, approval = waiting_run(auth_client, orchestration)
    waited = [span for span in trace_statuses(auth_client, run.pk) if span[2] == "waiting"]
    assert [kind for kind, _, _ in waited] == ["pattern"]

    auth_client.post(f"{APPROVALS}/{approval.pk}", {"decision": decision}, format="json")

    spans = trace_statuses(auth_client, run.pk)
    assert spans[0][0] == "run" and spans[0][2] == status
    assert [span for span in spans if span[2] in ("waiting", "running")] == []
    assert [(kind, name) for kind, name, state in spans if state == "paused"] == [waited[0][:2]]


@pytest.mark.usefixtures("communicators_disconnected")
async def test_cancelling_a_waiting_run_ends_it_and_its_approval(member):
    """The WebSocket `cancel` frame on a run that waits for its approval: the run ends cancelled
    with its final event, the approval is cancelled (approval.resolved, webhooks), its spans are
    closed and its holds freed; approving it later is a 409."""
    from asgiref.sync import sync_to_async

    from deployments.models import WebhookDelivery
    from tests.conftest import client_for
    from tests.deployments.factories import make_webhook

    hook = await sync_to_async(make_webhook)(member.organization, events=["approval.resolved", "run.failed"])
    orchestration = await sync_to_async(team)(member.organization, "sequential", "approval: {after: 0}")
    communicator, _, _ = await open_communicator(
        f"/api/orchestrations/{orchestration.pk}/stream", user=member
    )
    await communicator.send_json_to({"type": "execute", "input": {"text": "hi"}})
    frames = []
    while not frames or frames[-1]["type"] != "run.waiting":
        frames.append(await communicator.receive_json_from(timeout=10))
    run = await Run.objects.aget(pk=frames[-1]["run_id"])
    approval = await Approval.objects.aget(run=run)

    await communicator.send_json_to({"type": "cancel"})
    while frames[-1]["type"] != "run.failed":
        frames.append(await communicator.receive_json_from(timeout=10))
    await communicator.disconnect()

    resolved = next(frame for frame in frames if frame["type"] == "approval.resolved")
    assert resolved["data"]["approval_id"] == approval.pk and resolved["data"]["status"] == "cancelled"
    assert frames[-1]["data"]["status"] == "cancelled" and frames[-1]["data"]["error"]["code"] == "cancelled"
    await run.arefresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.completed_at and run.error["code"] == "cancelled"
    await approval.arefresh_from_db()
    assert approval.status == Approval.Status.CANCELLED and approval.decided_at
    spans = await sync_to_async(trace_statuses)(await sync_to_async(client_for)(member), run.pk)
    assert spans[0][0] == "run" and spans[0][2] == "cancelled"
    assert [span for span in spans if span[2] in ("waiting", "running")] == []
    assert not await Span.objects.filter(run=run, ended_at__isnull=True).aexists()
    from providers.models import BudgetCounter

    assert [c.reserved_usd async for c in BudgetCounter.objects.exclude(reserved_usd=0)] == []
    audit = await AuditLog.objects.aget(operation_type="approval_cancel", record_id=approval.pk)
    assert audit.changes["run_id"] == run.pk
    events = [d.event async for d in WebhookDelivery.objects.filter(webhook=hook).order_by("created_at")]
    assert events == ["approval.resolved", "run.failed"]

    api = await sync_to_async(client_for)(member)
    late = await sync_to_async(api.post)(f"{APPROVALS}/{approval.pk}", {"decision": "approve"}, format="json")
    assert late.status_code == 409 and late.json()["error"]["code"] == "approval_decided"
    assert "cancelled" in late.json()["error"]["message"]
    await run.arefresh_from_db()
    assert run.status == Run.Status.CANCELLED
    types = [e.type async for e in RunEvent.objects.filter(run=run).order_by("seq")]
    assert types[-1] == "run.failed" and types.count("run.failed") == 1 and "run.resumed" not in types


def test_cancelling_a_waiting_run_frees_the_holds_of_calls_it_left_open(auth_client, member):
    from decimal import Decimal

    from observability.supervisor import run_cancel
    from providers.budgets import current_month
    from providers.models import BudgetCounter

    orchestration = team(member.organization, "sequential", "approval: {after: 0}")
    run, approval = waiting_run(auth_client, orchestration)
    counter = BudgetCounter.objects.create(
        organization=member.organization, subject="agt-held", month=current_month(), reserved_usd=Decimal(1)
    )
    held = Span.objects.create(
        run=run, organization=member.organization, kind="llm", name="call", budget_holds=[[counter.pk, "1"]]
    )

    assert run_cancel(run) is True

    counter.refresh_from_db()
    held.refresh_from_db()
    assert counter.reserved_usd == 0 and counter.spent_usd == 0
    assert held.status == "cancelled" and held.ended_at is not None
    run.refresh_from_db()
    approval.refresh_from_db()
    assert (run.status, approval.status) == ("cancelled", "cancelled")
    assert run_cancel(run) is False  # ended already
