"""The recorder the engine writes a run's spans and events through (the `Recorder` protocol of
providers.llm.types), plus the start and finish of runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db.models import Max
from django.utils import timezone

from observability.events import publish_run_event
from observability.models import Run, RunEvent, Span


def jsonable(value: Any) -> Any:
    """Decimals become floats (money is a JSON number), tuples lists, mapping keys strings."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class RunRecorder:
    """Writes spans and numbered events of one run; events are published after they are stored."""

    def __init__(self, run: Run, *, next_seq: int = 1):
        self.run = run
        self._next_seq = next_seq
        self._seq_lock = asyncio.Lock()
        # What closing a span needs from its opening, so that a close is one UPDATE.
        self._open_spans: dict[str, tuple[dt.datetime, dict[str, Any]]] = {}

    @classmethod
    async def resume(cls, run: Run) -> RunRecorder:
        last = await RunEvent.objects.filter(run=run).aaggregate(last=Max("seq"))
        return cls(run, next_seq=(last["last"] or 0) + 1)

    async def span_open(self, *, kind, name, parent_id, agent_id=None, attributes=None) -> str:
        attributes = jsonable(dict(attributes or {}))
        span = await Span.objects.acreate(
            run_id=self.run.pk,
            organization_id=self.run.organization_id,
            parent_id=parent_id,
            kind=kind,
            name=name[:200],
            agent_id=agent_id or "",
            provider_id=attributes.pop("provider_id", "") or "",
            provider_kind=attributes.pop("provider_kind", ""),
            model=attributes.pop("model", ""),
            attributes=attributes,
        )
        self._open_spans[span.pk] = (span.started_at, attributes)
        return span.pk

    async def span_close(
        self,
        span_id,
        *,
        status,
        input_tokens=0,
        output_tokens=0,
        cost_usd=Decimal(0),
        attributes=None,
        error=None,
    ) -> None:
        started_at, opened_with = self._open_spans.pop(span_id)
        ended_at = timezone.now()
        await Span.objects.filter(pk=span_id).aupdate(
            ended_at=ended_at,
            duration_ms=max(0, int((ended_at - started_at).total_seconds() * 1000)),
            status=status,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            attributes={**opened_with, **jsonable(dict(attributes or {}))},
            error=error or "",
        )

    async def emit(self, type, *, agent_id=None, data) -> None:
        async with self._seq_lock:
            seq = self._next_seq
            self._next_seq += 1
            event = await RunEvent.objects.acreate(
                run_id=self.run.pk, seq=seq, type=type, agent_id=agent_id or "", data=jsonable(dict(data))
            )
        await publish_run_event(self.run.pk, event_frame(event))

    async def heartbeat(self) -> None:
        await Run.objects.filter(pk=self.run.pk).aupdate(heartbeat_at=timezone.now())


def event_frame(event: RunEvent) -> dict[str, Any]:
    """The wire shape of an event (WebSocket frames and replays)."""
    return {
        "type": event.type,
        "run_id": event.run_id,
        "seq": event.seq,
        "agent_id": event.agent_id or None,
        "data": event.data,
        "timestamp": event.timestamp.isoformat(),
    }
