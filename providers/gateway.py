"""The gateway: the only way the engine calls a model.

For each call it resolves the provider config, reserves the call's maximum cost against the
provider's and the agent's monthly budgets (a model without a price is refused when a budget has
a limit), calls the adapter, prices the answer, settles the reservations to the real cost and
records an `llm` span with tokens and cost."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q

from observability import metrics
from observability.models import Span
from observability.rows import row_insert
from observability.writer import batch_cached
from providers.budgets import Budget, Hold, budget_reserve, budget_settle
from providers.config_cache import provider_cached
from providers.llm import pricing
from providers.llm.mock_adapter import MOCK_MODEL
from providers.llm.registry import create_adapter
from providers.llm.types import (
    BudgetExceeded,
    Completion,
    CompletionRequest,
    Delta,
    LLMCall,
    LLMError,
    ProviderNotConfigured,
    ProviderSettings,
)
from providers.models import APIProviderConfig
from studio.errors import CodedError


def provider_settings(config: APIProviderConfig) -> ProviderSettings:
    """What an adapter needs, with the key decrypted (keep it out of logs and errors)."""
    return ProviderSettings(
        kind=config.provider,
        api_key=config.api_key_for_its_origin(),
        base_url=config.api_base_url or None,
        api_version=config.api_version or None,
        default_model=config.default_model or None,
        allow_private_urls=settings.ALLOW_PRIVATE_PROVIDER_URLS,
    )


def provider_config_resolve(
    *, organization_id: str, user_id: str | None, kind: str, provider_id: str | None
) -> APIProviderConfig | None:
    """The config a call of `kind` uses: the named one, else the organization's default, else its
    oldest active org-wide config. None only for `mock`, which needs no account."""
    visible = APIProviderConfig.objects.filter(
        Q(user__isnull=True) | Q(user_id=user_id),
        organization_id=organization_id,
        provider=kind,
        is_active=True,
    )
    if provider_id:
        config = visible.filter(pk=provider_id).first()
    else:
        # One query: the default first, else the oldest org-wide config (personal ones are never default).
        config = (
            visible.filter(Q(is_default=True) | Q(user__isnull=True))
            .order_by("-is_default", "created_at")
            .first()
        )
    if config is None and (provider_id or kind != "mock"):
        wanted = f"provider config {provider_id}" if provider_id else f"an active {kind} provider config"
        raise ProviderNotConfigured(f"This organization has no {wanted}.")
    return config


@dataclass
class _Prepared:
    settings: ProviderSettings
    model: str
    overrides: dict
    price: pricing.ModelPrice | None  # at the time of the request, which is what the call costs
    holds: list[Hold]
    span: Span


class StudioGateway:
    """The gateway of one run: every call is recorded on the run's span tree.

    A call is two ledger writes: before it, the config lookup, the reservation and the opened
    `llm` span; after it, the settlement and the closed span. Each is one write of the group
    commit, so the reservation and its span (and the settlement and its span) are stored together;
    they go through the run's recorder, so an agent's start waiting for the run's next write
    (`RunRecorder.batch(defer=True)`) is stored with its first call's reservation. A successful
    call's settlement waits the same way: in the run's work task it goes first in the run's next
    write, which its next reservation or the agent's end with the run's always is (or the
    heartbeat's, within 10 s). Until then the call holds its reservation instead of its cost, and
    a process dying in between leaves its span open with its holds, which the reaper releases
    as it does a call killed in flight."""

    def __init__(self, *, run, recorder):
        self.run = run
        self.recorder = recorder

    async def complete(self, call: LLMCall) -> Completion:
        prepared = await self._begin(call)
        try:
            completion = await create_adapter(prepared.settings).complete(self._request(call, prepared))
        except BaseException as exc:
            await self._fail(prepared, exc)
            raise
        return await self._finish(prepared, completion)

    async def stream(self, call: LLMCall) -> AsyncIterator[Delta | Completion]:
        prepared = await self._begin(call)
        try:
            async for item in create_adapter(prepared.settings).stream(self._request(call, prepared)):
                if isinstance(item, Completion):
                    yield await self._finish(prepared, item)
                    return
                yield item
        except BaseException as exc:
            await self._fail(prepared, exc)
            raise

    async def _begin(self, call: LLMCall) -> _Prepared:
        prepared = await self.recorder.write(functools.partial(self._prepare, call))
        if isinstance(prepared, LLMError):
            raise prepared
        self.recorder.span_track(prepared.span)
        return prepared

    @staticmethod
    def _request(call: LLMCall, prepared: _Prepared):
        return dataclasses.replace(call.request, model=prepared.model)

    def _provider(self, call: LLMCall) -> tuple[APIProviderConfig | None, ProviderSettings]:
        """The call's config and settings, from this process's entries while the organization's
        configs are unchanged (providers/config_cache.py), else read and decrypted now."""
        private = settings.ALLOW_PRIVATE_PROVIDER_URLS
        key = (self.run.organization_id, self.run.user_id, call.provider_kind, call.provider_id, private)
        return provider_cached(self.run.organization_id, key, functools.partial(self._provider_load, call))

    def _provider_load(self, call: LLMCall) -> tuple[APIProviderConfig | None, ProviderSettings]:
        config = provider_config_resolve(
            organization_id=self.run.organization_id,
            user_id=self.run.user_id,
            kind=call.provider_kind,
            provider_id=call.provider_id,
        )
        if config is None:
            mock = ProviderSettings(kind="mock", allow_private_urls=settings.ALLOW_PRIVATE_PROVIDER_URLS)
            return None, mock
        return config, provider_settings(config)

    def _prepare(self, call: LLMCall) -> _Prepared | LLMError:
        """The ledger write before a call. A refusal (no such config, a budget spent) is returned,
        not raised: it wrote nothing, so it need not roll back the writes it shares a batch with."""
        try:
            return self._reserve_and_open(call)
        except (ProviderNotConfigured, BudgetExceeded, pricing.ModelNotPriced) as refusal:
            return refusal

    def _reserve_and_open(self, call: LLMCall) -> _Prepared:
        key = ("provider", self.run.organization_id, self.run.user_id, call.provider_kind, call.provider_id)
        config, provider = batch_cached(key, functools.partial(self._provider, call))
        overrides, config_id = (config.pricing_overrides, config.pk) if config else ({}, "")
        model = call.request.model or provider.default_model or MOCK_MODEL
        price = pricing.find_price(model, overrides, provider_kind=provider.kind)
        budgets = []
        if config is not None:
            budgets.append(Budget(config.pk, config.budget_limit_usd, f"provider config '{config.name}'"))
        if call.agent_id:
            budgets.append(Budget(call.agent_id, call.agent_budget_limit_usd, f"agent {call.agent_id}"))
        amount = _reservation(model, price, call.request, budgets)
        holds = budget_reserve(organization_id=self.run.organization_id, budgets=budgets, amount=amount)
        span = self.recorder.span_new(
            kind="llm",
            name=f"{provider.kind}:{model}",
            parent_id=call.parent_span_id,
            agent_id=call.agent_id,
            attributes={
                "provider_id": config_id,
                "provider_kind": provider.kind,
                "model": model,
                "turn": call.request.turn,
                "reserved_usd": amount * len(holds),
            },
        )
        span.budget_holds = [hold.as_json() for hold in holds]
        row_insert(span)
        return _Prepared(provider, model, overrides, price, holds, span)

    async def _finish(self, prepared: _Prepared, completion: Completion) -> Completion:
        price = prepared.price or self._answered_model_price(prepared, completion)
        # An unpriced call is recorded at 0, not as "unknown": costs add up into runs, usage and
        # budget counters, which stay numbers; the warning tells it apart. It only gets here when
        # no budget limits it (see `_reservation`), so 0 lets no one past a limit.
        cost = price.cost(completion.usage) if price else Decimal(0)
        warnings = (
            completion.warnings
            if price
            else (*completion.warnings, f"model '{prepared.model}' has no price: its cost is recorded as 0")
        )
        close = self.recorder.span_closing(
            prepared.span.pk,
            status="completed",
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cost_usd=cost,
            attributes={
                "finish_reason": completion.finish_reason,
                "latency_ms": round(completion.latency_ms, 1),
                "cached_input_tokens": completion.usage.cached_input_tokens,
                "tool_calls": [call.name for call in completion.tool_calls],
                "warnings": list(warnings),
            },
        )
        # Settled with the run's next write (its next call's reservation, the agent's end with the
        # run's, a heartbeat), first in it: one transaction fewer a call (see the class doc).
        settle = functools.partial(_settle_and_close, prepared.holds, cost, close)
        await self.recorder.write(settle, defer=True)
        metrics.llm_call_completed(prepared.settings.kind, prepared.model, completion, cost)
        return dataclasses.replace(completion, cost_usd=cost, warnings=tuple(warnings))

    @staticmethod
    def _answered_model_price(prepared: _Prepared, completion: Completion) -> pricing.ModelPrice | None:
        """The price of the model the provider says answered, when the asked one has none (an
        alias or deployment name the provider resolved)."""
        if not completion.model:
            return None
        return pricing.find_price(completion.model, prepared.overrides, provider_kind=prepared.settings.kind)

    async def _fail(self, prepared: _Prepared, exc: BaseException) -> None:
        cancelled = not isinstance(exc, Exception)
        if isinstance(exc, CodedError):
            code, error = exc.code, exc.message or type(exc).__name__
        else:  # only the type: an unexpected exception's text stays in the server log
            code, error = "cancelled" if cancelled else "provider_error", type(exc).__name__
        close = self.recorder.span_closing(
            prepared.span.pk,
            status="cancelled" if cancelled else "failed",
            attributes={"error_code": code},
            error=error,
        )
        await self.recorder.write(functools.partial(_settle_and_close, prepared.holds, Decimal(0), close))
        metrics.llm_call_failed(prepared.settings.kind, prepared.model, cancelled=cancelled)


def _reservation(
    model: str, price: pricing.ModelPrice | None, request: CompletionRequest, budgets: list[Budget]
) -> Decimal:
    """What a call holds on its budgets: its maximum cost. A call without a price could spend
    without limit, so a budget with a limit refuses it before anything is sent."""
    if price is not None:
        return price.max_cost(request)
    limited = [budget.label for budget in budgets if budget.limit is not None]
    if limited:
        raise pricing.ModelNotPriced(
            f"Model '{model}' has no price, so the monthly budget of {' and '.join(limited)} cannot"
            f" be enforced. Give it a price in USD per million tokens in the provider config's"
            f' pricing_overrides, e.g. {{"{model}": {{"input": 2.5, "output": 10}}}}, or in'
            " providers/pricing.yaml."
        )
    return Decimal(0)


def _settle_and_close(holds: list[Hold], cost: Decimal, close_span: Callable[[], Any]) -> None:
    budget_settle(holds, cost=cost)
    close_span()
