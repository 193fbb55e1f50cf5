"""Webhook deliveries do not grow for ever: settled ones older than the retention are pruned (by
the sweeper inline, by a daily task of the pool), and a spent budget that refuses call after call
sends one `budget.exceeded` per webhook and budget month."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from deployments.models import WebhookDelivery
from deployments.webhook_delivery import webhook_sweeping_start, webhook_sweeping_stop
from deployments.webhooks import webhook_deliveries_prune, webhook_event_record
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.deployments.factories import make_delivery, make_webhook
from tests.deployments.helpers import INPUTS, bearer, deploy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]


def aged(delivery: WebhookDelivery, days: float) -> WebhookDelivery:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - dt.timedelta(days=days))
    return delivery


def old_and_new(webhook) -> dict[str, WebhookDelivery]:
    return {
        "old delivered": aged(make_delivery(webhook, status="delivered"), 31),
        "old failed": aged(make_delivery(webhook, status="failed"), 45),
        "old pending": aged(make_delivery(webhook, status="pending"), 31),
        "recent": aged(make_delivery(webhook, status="delivered"), 29),
    }


def remaining(webhook) -> set[str]:
    return set(WebhookDelivery.objects.filter(webhook=webhook).values_list("pk", flat=True))


def test_settled_deliveries_past_the_retention_are_pruned_in_batches(member, settings):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    webhook, other = make_webhook(member.organization), make_webhook(member.organization)
    rows = old_and_new(webhook)
    theirs = aged(make_delivery(other, status="failed"), 40)

    assert webhook_deliveries_prune(batch_size=1) == 3

    assert remaining(webhook) == {rows["old pending"].pk, rows["recent"].pk}  # pending: still owed
    assert remaining(other) == set() and not WebhookDelivery.objects.filter(pk=theirs.pk).exists()
    assert webhook_deliveries_prune() == 0


def test_a_retention_of_zero_keeps_every_delivery(member, settings):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 0
    webhook = make_webhook(member.organization)
    rows = old_and_new(webhook)
    assert webhook_deliveries_prune() == 0
    assert remaining(webhook) == {row.pk for row in rows.values()}


async def test_the_inline_sweeper_prunes_when_it_starts(member, settings):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    settings.WEBHOOK_SWEEP_EVERY_S = 0.1
    webhook = await sync_to_async(make_webhook)(member.organization)
    rows = await sync_to_async(old_and_new)(webhook)
    webhook_sweeping_start()
    try:
        for _ in range(200):
            if len(await sync_to_async(remaining)(webhook)) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await webhook_sweeping_stop()
    assert await sync_to_async(remaining)(webhook) == {rows["old pending"].pk, rows["recent"].pk}


async def test_the_worker_pool_prunes_daily(member, settings):
    from procrastinate.contrib.django import app

    from deployments.webhook_tasks import prune_webhook_deliveries

    periodic = app.periodic_registry.periodic_tasks
    assert (prune_webhook_deliveries.name, "prune_webhook_deliveries") in periodic
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    webhook = await sync_to_async(make_webhook)(member.organization)
    rows = await sync_to_async(old_and_new)(webhook)

    assert await prune_webhook_deliveries(timestamp=0) == 2

    assert await sync_to_async(remaining)(webhook) == {rows["old pending"].pk, rows["recent"].pk}


# --- budget.exceeded once per budget month --------------------------------------------------------


async def test_calls_refused_by_a_spent_budget_send_one_budget_exceeded(admin_user):
    hook = await sync_to_async(make_webhook)(
        admin_user.organization, events=["budget.exceeded", "run.failed"]
    )
    frugal = support_yaml(config_extra="  budget_limit_usd: 0.0000001")
    agent = await sync_to_async(make_agent)(admin_user.organization, frugal)
    deployment, key = await sync_to_async(deploy)(admin_user, agent=agent)

    for _ in range(3):
        response = await AsyncClient().post(
            f"/workflows/{deployment.name}/execute",
            json.dumps({"inputs": INPUTS}),
            content_type="application/json",
            headers=bearer(key),
        )
        assert response.status_code == 402, response.json()

    events = [d.event async for d in WebhookDelivery.objects.filter(webhook=hook).order_by("created_at")]
    assert events.count("run.failed") == 3
    assert events.count("budget.exceeded") == 1
    [exceeded] = [d async for d in WebhookDelivery.objects.filter(webhook=hook, event="budget.exceeded")]
    assert exceeded.payload["data"]["subject"] == agent.pk


def test_budget_exceeded_is_sent_again_in_the_next_month_and_to_each_webhook(member):
    first = make_webhook(member.organization, events=["budget.exceeded"])
    refusal = {"subject": "agt-1", "month": "2030-01-01", "message": "spent"}

    def record(**changes) -> list[str]:
        data = {**refusal, **changes}
        return webhook_event_record(
            organization_id=member.organization_id, event="budget.exceeded", data=data
        )

    assert len(record()) == 1
    assert record() == []
    assert len(record(month="2030-02-01")) == 1  # the next month's counter
    assert len(record(subject="agt-2")) == 1  # another budget
    later = make_webhook(member.organization, events=["budget.exceeded"])
    assert [d.webhook_id for d in WebhookDelivery.objects.filter(pk__in=record())] == [later.pk]
    assert WebhookDelivery.objects.filter(webhook=first).count() == 3
