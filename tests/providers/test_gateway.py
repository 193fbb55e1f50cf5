"""The gateway end to end: provider resolution, real SDK calls to a fake server, pricing,
budgets (reserve, settle, refuse) and the llm spans it records."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from observability.models import Run, Span
from observability.recorder import RunRecorder
from providers.budgets import current_month, spent_this_month
from providers.gateway import StudioGateway
from providers.llm.types import (
    BudgetExceeded,
    CompletionRequest,
    LLMCall,
    Message,
    ProviderNotConfigured,
)
from providers.models import BudgetCounter
from tests.fakes.behaviours import answer, status
from tests.observability.factories import queued_run
from tests.providers.factories import make_provider_config

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("llm_clients_closed", "ledger_group_commit"),
]


def request(text="Hello there", *, model="gpt-4o-mini", **fields):
    return CompletionRequest(messages=(Message(role="user", content=text),), model=model, **fields)


@pytest.fixture
def private_urls(settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True


async def gateway_for(member):
    run = await sync_to_async(queued_run)(
        organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={}
    )
    return StudioGateway(run=run, recorder=RunRecorder(run)), run


async def test_a_call_through_the_fake_openai_server_is_priced_and_recorded(
    member, fake_openai, private_urls
):
    config = await sync_to_async(make_provider_config)(
        member.organization, api_base_url=fake_openai.base_url, is_default=True
    )
    gateway, run = await gateway_for(member)
    completion = await gateway.complete(
        LLMCall(
            request=request(max_tokens=50), provider_kind="openai_compatible", agent_id="agent-" + "a" * 32
        )
    )
    assert completion.text and completion.usage.input_tokens > 0
    assert completion.cost_usd > 0
    assert fake_openai.requests[-1].headers["Authorization"] == "Bearer test-key"

    span = await Span.objects.aget(run=run, kind="llm")
    assert span.provider_id == config.pk and span.model == "gpt-4o-mini" and span.status == "completed"
    assert span.input_tokens == completion.usage.input_tokens and span.cost_usd == completion.cost_usd
    assert "test-key" not in str(span.attributes)
    assert await sync_to_async(spent_this_month)(config.pk) == completion.cost_usd
    assert await sync_to_async(spent_this_month)("agent-" + "a" * 32) == completion.cost_usd
    assert not await Span.objects.filter(kind="llm", ended_at__isnull=True).aexists()


async def test_the_mock_provider_needs_no_config_and_is_priced(member):
    gateway, run = await gateway_for(member)
    completion = await gateway.complete(LLMCall(request=request(model="mock-1"), provider_kind="mock"))
    assert completion.cost_usd > 0
    span = await Span.objects.aget(run=run, kind="llm")
    assert span.provider_kind == "mock" and span.provider_id == ""


async def test_an_unknown_model_costs_nothing_and_the_span_says_so(member, fake_openai, private_urls):
    await sync_to_async(make_provider_config)(member.organization, api_base_url=fake_openai.base_url)
    gateway, run = await gateway_for(member)
    completion = await gateway.complete(
        LLMCall(request=request(model="house-model-7"), provider_kind="openai_compatible")
    )
    assert completion.cost_usd == 0
    span = await Span.objects.aget(run=run, kind="llm")
    assert any("house-model-7" in warning for warning in span.attributes["warnings"])


async def test_a_call_over_the_provider_budget_is_refused_before_any_request(
    member, fake_openai, private_urls
):
    config = await sync_to_async(make_provider_config)(
        member.organization, api_base_url=fake_openai.base_url, budget="0.000001"
    )
    gateway, run = await gateway_for(member)
    with pytest.raises(BudgetExceeded) as refused:
        await gateway.complete(LLMCall(request=request(model="gpt-4o"), provider_kind="openai_compatible"))
    assert refused.value.status == 402
    assert fake_openai.requests == []
    assert not await Span.objects.filter(kind="llm", ended_at__isnull=True).aexists()
    assert not await Span.objects.filter(run=run).aexists()
    assert await sync_to_async(spent_this_month)(config.pk) == 0


async def test_an_agent_budget_is_enforced_and_releases_the_provider_hold(member, fake_openai, private_urls):
    config = await sync_to_async(make_provider_config)(member.organization, api_base_url=fake_openai.base_url)
    gateway, _ = await gateway_for(member)
    call = LLMCall(
        request=request(model="gpt-4o"),
        provider_kind="openai_compatible",
        agent_id="agent-" + "b" * 32,
        agent_budget_limit_usd=Decimal("0.000001"),
    )
    with pytest.raises(BudgetExceeded):
        await gateway.complete(call)
    assert not await BudgetCounter.objects.filter(subject=config.pk, reserved_usd__gt=0).aexists()
    assert not await BudgetCounter.objects.filter(subject=config.pk, spent_usd__gt=0).aexists()
    assert not await Span.objects.filter(kind="llm", ended_at__isnull=True).aexists()


async def test_refused_calls_sharing_a_transaction_leave_the_others_whole(member):
    """Concurrent calls share ledger transactions: calls of an agent over its budget are refused
    (after their provider budget was held, which they give back), the calls of another agent in the
    same transactions complete and are counted in full."""
    config = await sync_to_async(make_provider_config)(
        member.organization, provider="mock", api_key="", budget="1000", is_default=True
    )
    gateway, run = await gateway_for(member)

    def call(agent_id, limit):
        return LLMCall(
            request=request(model="mock-1"),
            provider_kind="mock",
            agent_id=agent_id,
            agent_budget_limit_usd=Decimal(limit),
        )

    capped, free = "agent-" + "c" * 32, "agent-" + "d" * 32
    results = await asyncio.gather(
        *(gateway.complete(call(capped, "0.000001")) for _ in range(5)),
        *(gateway.complete(call(free, "100")) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(result, BudgetExceeded) for result in results[:5])
    completions = results[5:]
    assert all(completion.cost_usd > 0 for completion in completions)
    assert await sync_to_async(spent_this_month)(free) == sum(c.cost_usd for c in completions)
    counters = {c.subject: c async for c in BudgetCounter.objects.all()}
    assert counters[capped].reserved_usd == counters[capped].spent_usd == 0
    assert counters[free].reserved_usd == counters[config.pk].reserved_usd == 0
    assert counters[config.pk].spent_usd == counters[free].spent_usd
    assert not await Span.objects.filter(kind="llm", ended_at__isnull=True).aexists()
    assert await Span.objects.filter(run=run, kind="llm", status="completed").acount() == 5


async def test_a_provider_failure_releases_the_reservation_and_fails_the_span(
    member, fake_openai, private_urls
):
    config = await sync_to_async(make_provider_config)(member.organization, api_base_url=fake_openai.base_url)
    fake_openai.enqueue(status(500), status(500), status(500))
    gateway, run = await gateway_for(member)
    with pytest.raises(Exception) as failed:
        await gateway.complete(LLMCall(request=request(max_retries=0), provider_kind="openai_compatible"))
    assert failed.value.code == "provider_error"
    counter = await BudgetCounter.objects.aget(subject=config.pk)
    assert counter.reserved_usd == 0 and counter.spent_usd == 0
    span = await Span.objects.aget(run=run, kind="llm")
    assert span.status == "failed" and span.attributes["error_code"] == "provider_error"


async def test_streaming_through_the_gateway_yields_deltas_then_a_priced_completion(
    member, fake_openai, private_urls
):
    await sync_to_async(make_provider_config)(member.organization, api_base_url=fake_openai.base_url)
    fake_openai.enqueue(answer("alpha beta gamma"))
    gateway, run = await gateway_for(member)
    items = [
        item async for item in gateway.stream(LLMCall(request=request(), provider_kind="openai_compatible"))
    ]
    deltas = "".join(item.text for item in items[:-1])
    assert deltas.split() == ["alpha", "beta", "gamma"]
    assert items[-1].cost_usd > 0
    assert (await Span.objects.aget(run=run, kind="llm")).status == "completed"


async def test_a_missing_provider_config_is_a_clear_error(member):
    gateway, _ = await gateway_for(member)
    with pytest.raises(ProviderNotConfigured):
        await gateway.complete(LLMCall(request=request(), provider_kind="anthropic"))


async def test_another_organizations_config_is_never_used(member, other_org_owner, fake_openai, private_urls):
    foreign = await sync_to_async(make_provider_config)(
        other_org_owner.organization, api_base_url=fake_openai.base_url
    )
    gateway, _ = await gateway_for(member)
    with pytest.raises(ProviderNotConfigured):
        await gateway.complete(
            LLMCall(request=request(), provider_kind="openai_compatible", provider_id=foreign.pk)
        )


async def test_the_key_never_reaches_the_logs(member, fake_openai, private_urls, caplog):
    secret = "sk-live-very-secret-key-0042"
    fake_openai.reset(api_key=secret)
    await sync_to_async(make_provider_config)(
        member.organization, api_key=secret, api_base_url=fake_openai.base_url
    )
    caplog.set_level(logging.DEBUG)
    gateway, run = await gateway_for(member)
    await gateway.complete(LLMCall(request=request(), provider_kind="openai_compatible"))
    fake_openai.enqueue(status(401))
    with pytest.raises(Exception):  # noqa: B017
        await gateway.complete(LLMCall(request=request(), provider_kind="openai_compatible"))
    assert secret not in caplog.text
    spans = [span async for span in Span.objects.filter(run=run)]
    assert all(secret not in f"{span.attributes} {span.error}" for span in spans)


def test_month_rollover_starts_a_fresh_budget(member):
    from providers.budgets import Budget, budget_reserve

    config = make_provider_config(member.organization, budget="1.00")
    last_month = current_month().replace(day=1) - __import__("datetime").timedelta(days=1)
    BudgetCounter.objects.create(
        organization=member.organization,
        subject=config.pk,
        month=last_month.replace(day=1),
        spent_usd=Decimal("1"),
    )
    [hold] = budget_reserve(
        organization_id=member.organization_id,
        budgets=[Budget(config.pk, Decimal("1"), "x")],
        amount=Decimal("0.5"),
    )
    assert BudgetCounter.objects.get(pk=hold.counter_id).month == current_month()


def test_fifty_concurrent_reservations_never_overrun_a_budget_that_fits_ten(member):
    """Each reservation runs in its own thread and database connection."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from providers.budgets import Budget, budget_reserve

    config = make_provider_config(member.organization, budget="10")

    def reserve(_):
        try:
            budget_reserve(
                organization_id=member.organization_id,
                budgets=[Budget(config.pk, Decimal("10"), "test")],
                amount=Decimal("1"),
            )
            return True
        except BudgetExceeded:
            return False
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(reserve, range(50)))
    assert outcomes.count(True) == 10
    counter = BudgetCounter.objects.get(subject=config.pk)
    assert counter.reserved_usd == Decimal("10")


async def test_concurrent_gateway_calls_run_at_the_same_time(member):
    gateway, _ = await gateway_for(member)
    calls = [
        gateway.complete(
            LLMCall(
                request=request(model="mock-1", provider_options={"latency_ms": 1000}), provider_kind="mock"
            )
        )
        for _ in range(10)
    ]
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*calls)
    assert asyncio.get_running_loop().time() - started < 5  # one after another: 10 s
    assert await Span.objects.filter(kind="llm").acount() == 10
    assert await Run.objects.acount() == 1
