"""Reads of provider configs: who sees which config, this month's spend, and usage from the ledger."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from observability.models import Span
from observability.sql import MONEY, period_window
from providers.budgets import current_month, spent_this_month
from providers.models import APIProviderConfig, BudgetCounter


def provider_config_list(*, user) -> QuerySet[APIProviderConfig]:
    """The organization-wide configs of the user's organization and the user's personal ones (never
    another member's), each annotated with `current_spend_usd` of this month."""
    spent = BudgetCounter.objects.filter(subject=OuterRef("pk"), month=current_month()).values("spent_usd")
    return (
        APIProviderConfig.objects.filter(
            Q(user__isnull=True) | Q(user_id=user.pk), organization_id=user.organization_id
        )
        .annotate(current_spend_usd=Coalesce(Subquery(spent[:1]), Value(Decimal(0)), output_field=MONEY))
        .order_by("name", "id")
    )


def _totals() -> dict:
    # Aliases differ from the Span fields they sum: Django refuses annotations named like a field.
    return {
        "calls": Count("id"),
        "tokens_in": Coalesce(Sum("input_tokens"), 0),
        "tokens_out": Coalesce(Sum("output_tokens"), 0),
        "cost": Coalesce(Sum("cost_usd"), Value(Decimal(0)), output_field=MONEY),
    }


def _usage_row(row: dict) -> dict:
    return {
        "executions": row["calls"],
        "input_tokens": row["tokens_in"],
        "output_tokens": row["tokens_out"],
        "cost_usd": row["cost"],
    }


def provider_usage(*, config: APIProviderConfig, period: str, now: dt.datetime | None = None) -> dict:
    """Usage of `config` in the period from its llm spans, in SQL: totals, per day and per model.
    `executions` counts the LLM calls made through the config (failed calls included, at their cost)."""
    start, end = period_window(period, now=now)
    calls = Span.objects.filter(
        organization_id=config.organization_id,
        provider_id=config.pk,
        kind=Span.Kind.LLM,
        started_at__gte=start,
        started_at__lt=end,
    )
    by_day = (
        calls.annotate(date=TruncDate("started_at", tzinfo=dt.UTC))
        .values("date")
        .annotate(**_totals())
        .order_by("date")
    )
    by_model = calls.values("model").annotate(**_totals()).order_by("model")
    return {
        "period": period,
        "start": start,
        "end": end,
        **_usage_row(calls.aggregate(**_totals())),
        "budget_limit_usd": config.budget_limit_usd,
        "current_spend_usd": spent_this_month(config.pk),
        "by_day": [{"date": row["date"], **_usage_row(row)} for row in by_day],
        "by_model": [{"model": row["model"], **_usage_row(row)} for row in by_model],
    }
