"""What a deployment call costs the ledger and the channel layer (issue 13, item 3): its ledger
transactions, pinned with what each stores, and its membership checks of the run's group (one per
stored batch of events that someone could be following)."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.test import AsyncClient

from observability import events, writer
from observability.events import run_group
from observability.models import Run, RunEvent, Span
from observability.supervisor import RunDraft, RunOutcome, run_start
from providers.budgets import Hold, spent_this_month
from providers.gateway import StudioGateway
from providers.llm.types import CompletionRequest, LLMCall, Message
from providers.models import BudgetCounter
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.deployments.helpers import GOOD, INPUTS, bearer, deploy

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("llm_clients_closed", "ledger_group_commit"),
]

WRITE = re.compile(r'^\s*(INSERT INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


@pytest.fixture
def transactions(monkeypatch):
    """The rows each ledger transaction writes, as (INSERT or UPDATE, table), in order; each
    attempt of a batch is one transaction."""
    seen: list[list[tuple[str, str]]] = []
    attempt = writer._attempt

    def record(execute, sql, params, many, context):
        match = WRITE.match(sql)
        if match:
            seen[-1].append((match.group(1).split()[0].upper(), match.group(2)))
        return execute(sql, params, many, context)

    def recording(entries):
        seen.append([])
        with connection.execute_wrapper(record):
            return attempt(entries)

    monkeypatch.setattr(writer, "_attempt", recording)
    return seen


@pytest.fixture
def checks(monkeypatch):
    """The run groups whose membership was checked before publishing."""
    groups: list[str] = []
    followed = events._followed

    async def counting(layer, group):
        groups.append(group)
        return await followed(layer, group)

    monkeypatch.setattr(events, "_followed", counting)
    return groups


async def call(key: str):
    response = await AsyncClient().post(
        "/workflows/support/execute",
        json.dumps({"inputs": INPUTS}),
        content_type="application/json",
        headers=bearer(key),
    )
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
async def deployed(admin_user):
    return await sync_to_async(deploy)(admin_user, name="support")


RUN, SPAN, EVENT = Run._meta.db_table, Span._meta.db_table, RunEvent._meta.db_table
COUNTER = BudgetCounter._meta.db_table


async def test_a_deployment_call_is_three_ledger_transactions(deployed, transactions):
    deployment, key = deployed
    await call(key)  # the first call creates the agent's budget counter
    transactions.clear()
    body = await call(key)
    assert transactions == [
        # the run admitted and started: its row, its root span, run.started
        [("INSERT", RUN), ("INSERT", SPAN), ("INSERT", EVENT)],
        # the agent's start (waiting for the run's next write) and the LLM call's reservation
        [("INSERT", SPAN), ("INSERT", EVENT), ("UPDATE", COUNTER), ("INSERT", SPAN)],
        # the call's settlement and its span closed, the agent's end, the run's end
        [
            ("UPDATE", COUNTER),
            ("UPDATE", SPAN),
            ("UPDATE", SPAN),
            ("INSERT", EVENT),
            ("UPDATE", RUN),
            ("UPDATE", SPAN),
            ("INSERT", EVENT),
        ],
    ]
    llm = await Span.objects.aget(run_id=body["run_id"], kind="llm")
    assert llm.status == "completed" and llm.cost_usd > 0
    assert float(llm.cost_usd) == body["usage"]["cost_usd"]


async def test_a_settled_call_is_spent_and_no_longer_reserved(deployed, transactions):
    deployment, key = deployed
    first, second = await call(key), await call(key)
    counter = await BudgetCounter.objects.aget(subject=deployment.agent_id)
    assert counter.reserved_usd == 0
    spent = await sync_to_async(spent_this_month)(deployment.agent_id)
    assert float(spent) == pytest.approx(first["usage"]["cost_usd"] + second["usage"]["cost_usd"])


async def test_a_call_nobody_follows_checks_the_runs_group_twice(deployed, checks):
    """run.started is never sent (no one can follow a run before its row is stored, and every
    follower replays what was stored before it joined); agent.started is checked with the
    reservation's write, agent.completed and run.completed with the run's end: one check each."""
    _, key = deployed
    body = await call(key)
    assert checks == [events.run_group(body["run_id"])] * 2


@pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis channel layer's (REDIS_URL)")
async def test_a_call_nobody_follows_sends_two_commands_to_the_channel_layer(deployed, monkeypatch):
    from redis.asyncio import Redis

    _, key = deployed
    sent: list[str] = []
    execute = Redis.execute_command

    async def recording(self, *args, **options):
        sent.append(str(args[0]).upper())
        return await execute(self, *args, **options)

    await call(key)  # warm: the rate limit's script loaded, the admission's entry kept
    monkeypatch.setattr(Redis, "execute_command", recording)
    body = await call(key)
    group_key = f"{events.run_group(body['run_id'])}"
    assert sent.count("ZCARD") == 2, (group_key, sent)


BAD = {"response": "ok", "priority": "urgent"}  # not one of the enum's values


def scripted_agent(organization, answers):
    """A mock agent answering `answers` in turn (a bad answer is asked again, once)."""
    yaml_text = support_yaml(responses=[{"response": answer} for answer in answers])
    return make_agent(organization, yaml_text, name="Support")


async def test_each_further_call_of_an_agent_settles_the_one_before_in_its_reservation(
    admin_user, transactions
):
    """An answer that fails its output check is asked again: the first call's settlement goes
    first in the second call's reservation, the second's with the run's end."""
    agent = await sync_to_async(scripted_agent)(admin_user.organization, [BAD, GOOD])
    _, key = await sync_to_async(deploy)(admin_user, agent, name="support")
    body = await call(key)
    assert len(transactions) == 4  # the start, a reservation each, the end
    assert transactions[2][:3] == [("UPDATE", COUNTER), ("UPDATE", SPAN), ("UPDATE", COUNTER)]
    spans = [span async for span in Span.objects.filter(run_id=body["run_id"], kind="llm")]
    assert [span.status for span in spans] == ["completed", "completed"]
    assert sum(span.cost_usd for span in spans) == (await Run.objects.aget(pk=body["run_id"])).cost_usd


async def test_a_failed_calls_run_counts_the_calls_it_paid_for(admin_user):
    """Both answers fail the output check: the run fails, with the tokens and cost of its two calls
    (the second's settlement, still waiting for the run's next write, is read by the run's end)."""
    agent = await sync_to_async(scripted_agent)(admin_user.organization, [BAD, BAD])
    _, key = await sync_to_async(deploy)(admin_user, agent, name="support")
    response = await AsyncClient().post(
        "/workflows/support/execute",
        json.dumps({"inputs": INPUTS}),
        content_type="application/json",
        headers=bearer(key),
    )
    assert response.status_code == 502
    run = await Run.objects.aget(deployment_id__isnull=False, status="failed")
    spans = [span async for span in Span.objects.filter(run=run, kind="llm")]
    assert len(spans) == 2 and all(span.status == "completed" for span in spans)
    assert run.cost_usd == sum(span.cost_usd for span in spans) > 0
    assert run.input_tokens == sum(span.input_tokens for span in spans)
    counter = await BudgetCounter.objects.aget(subject=agent.pk)
    assert counter.reserved_usd == 0 and counter.spent_usd == run.cost_usd


AGENT = "agent-" + "c" * 32


def mock_call(root: str) -> LLMCall:
    request = CompletionRequest(messages=(Message(role="user", content="Hello there"),), model="mock-1")
    return LLMCall(
        request, provider_kind="mock", agent_id=AGENT, agent_budget_limit_usd=Decimal(1), parent_span_id=root
    )


def draft_of(member) -> RunDraft:
    return RunDraft(organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={})


async def test_a_call_whose_settlement_waits_leaves_what_the_reaper_releases(member):
    """Until the run's next write the answered call holds its reservation on its open span, as a
    call in flight does: a process killed then leaves holds `budget_release_run` frees (see
    tests/providers/test_reap_runs.py); the next write settles it."""
    answered, go_on = asyncio.Event(), asyncio.Event()

    async def work(recorder, root) -> RunOutcome:
        completion = await StudioGateway(run=recorder.run, recorder=recorder).complete(mock_call(root))
        answered.set()
        await go_on.wait()  # a process killed here
        return RunOutcome(output={}, cost_usd=completion.cost_usd)

    running = asyncio.create_task(run_start(draft_of(member), work, name="waiting settlement"))
    await answered.wait()
    span = await Span.objects.aget(kind="llm", run__organization_id=member.organization_id)
    assert span.ended_at is None and span.budget_holds
    counter = await BudgetCounter.objects.aget(subject=AGENT)
    assert counter.reserved_usd == sum(Hold.from_json(hold).amount_usd for hold in span.budget_holds) > 0
    assert counter.spent_usd == 0

    go_on.set()
    run, _ = await running
    await span.arefresh_from_db()
    await counter.arefresh_from_db()
    assert span.status == "completed" and span.budget_holds and span.cost_usd > 0
    assert (counter.reserved_usd, counter.spent_usd) == (0, span.cost_usd)
    assert run.cost_usd == span.cost_usd


async def test_a_follower_joining_mid_run_gets_every_event_live_or_replayed(member):
    """A follower joins the run's group between two of its writes, then replays what is stored:
    with one membership check per write (and none for the run's first), it still gets every
    event, the later ones live."""
    layer = get_channel_layer()
    stored_one, followed = asyncio.Event(), asyncio.Event()

    async def work(recorder, root) -> RunOutcome:
        async with recorder.batch(defer=True):
            await recorder.emit("agent.started", agent_id=AGENT, data={})
        await recorder.emit("step", data={"n": 1})  # stored with agent.started
        stored_one.set()
        await followed.wait()
        async with recorder.batch():
            await recorder.emit("step", data={"n": 2})
            await recorder.emit("step", data={"n": 3})
        async with recorder.batch(defer=True):
            await recorder.emit("agent.completed", agent_id=AGENT, data={})
        return RunOutcome(output={})

    running = asyncio.create_task(run_start(draft_of(member), work, name="followed"))
    await stored_one.wait()
    run = await Run.objects.aget(organization_id=member.organization_id)
    channel = await layer.new_channel()
    await layer.group_add(run_group(run.pk), channel)
    replayed = [event.seq async for event in RunEvent.objects.filter(run=run).order_by("seq")]
    followed.set()
    live = []
    while not live or live[-1]["type"] != "run.completed":
        live.append((await asyncio.wait_for(layer.receive(channel), 10))["event"])
    await running
    await layer.group_discard(run_group(run.pk), channel)
    assert replayed == [1, 2, 3]  # run.started, agent.started, step 1
    assert [event["seq"] for event in live] == [4, 5, 6, 7]  # steps 2, 3, agent.completed, run.completed
