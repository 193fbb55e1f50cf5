"""An in-memory Recorder for the engine tests (agent runtime and patterns): no Django, no ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from providers.llm.types import Recorder


class MemoryRecorder(Recorder):
    """Keeps spans (as dicts, counting every close) and events in memory."""

    def __init__(self):
        self.spans: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    async def span_open(self, *, kind, name, parent_id, agent_id=None, attributes=None, key=None) -> str:
        span_id = f"span-{len(self.spans) + 1:032x}"
        self.spans[span_id] = {
            "id": span_id,
            "kind": kind,
            "name": name,
            "parent_id": parent_id,
            "agent_id": agent_id,
            "attributes": dict(attributes or {}),
            "key": key,
            "status": "open",
            "closes": 0,
        }
        return span_id

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
        output=None,
    ) -> None:
        span = self.spans[span_id]
        span["attributes"].update(attributes or {})
        span.update(
            status=status,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            error=error,
            output=output,
            closes=span["closes"] + 1,
        )

    async def emit(self, type, *, agent_id=None, data) -> None:
        self.events.append({"type": type, "agent_id": agent_id, "data": dict(data)})

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [span for span in self.spans.values() if span["kind"] == kind]

    def children(self, span_id: str) -> list[dict[str, Any]]:
        return [span for span in self.spans.values() if span["parent_id"] == span_id]

    def event_types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def assert_every_span_closed_once(self) -> None:
        assert [span["closes"] for span in self.spans.values()] == [1] * len(self.spans)

    def steps(self) -> list[dict[str, Any]]:
        """The data of the `pattern.step` events, without the pattern id."""
        steps = [event["data"] for event in self.events if event["type"] == "pattern.step"]
        return [{k: v for k, v in data.items() if k != "pattern"} for data in steps]
