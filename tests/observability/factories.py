"""Ledger rows made directly (in bulk, at chosen times) for the observability read tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from observability.models import Run, RunEvent, Span


def run(
    organization,
    *,
    at: dt.datetime | None = None,
    agent_id: str = "",
    kind: str = Run.Kind.AGENT_TEST,
    status: str = Run.Status.COMPLETED,
    cost: str = "0.0100",
    input_tokens: int = 10,
    output_tokens: int = 5,
    execution_time_ms: int | None = 100,
    **fields,
) -> Run:
    """An unsaved run that finished at `at` (default now) after `execution_time_ms`."""
    at = at or timezone.now()
    finished = status in Run.FINISHED
    return Run(
        organization=organization,
        kind=kind,
        agent_id=agent_id,
        status=status,
        created_at=at,
        started_at=at,
        completed_at=at + dt.timedelta(milliseconds=execution_time_ms or 0) if finished else None,
        heartbeat_at=at,
        execution_time_ms=execution_time_ms if finished else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=Decimal(cost),
        **fields,
    )


def save(*runs: Run) -> list[Run]:
    return Run.objects.bulk_create(runs)


def span(
    run_row: Run, kind: str, name: str, *, parent: Span | None = None, offset_ms: int = 0, **fields
) -> Span:
    started = run_row.created_at + dt.timedelta(milliseconds=offset_ms)
    duration = fields.pop("duration_ms", 10)
    return Span.objects.create(
        run=run_row,
        organization_id=run_row.organization_id,
        parent=parent,
        kind=kind,
        name=name,
        status=fields.pop("status", "completed"),
        started_at=started,
        ended_at=started + dt.timedelta(milliseconds=duration),
        duration_ms=duration,
        **fields,
    )


def event(run_row: Run, seq: int, type: str = "run.started") -> RunEvent:
    return RunEvent.objects.create(run=run_row, seq=seq, type=type)


def queued_run(*, organization_id: str, kind: str = Run.Kind.AGENT_TEST, **fields) -> Run:
    """A stored run that has not started yet (as `run_start` stores it), for tests that drive its
    execution or its ledger directly."""
    return Run.objects.create(organization_id=organization_id, kind=kind, **fields)
