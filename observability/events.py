"""The event bus: run events go to the run's channel-layer group, so a WebSocket client on any
server process can follow. Publishing is best effort: clients resume from stored events by seq."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# The events that end a run: a client following it stops after one of them.
FINAL_EVENTS = frozenset({"run.completed", "run.failed"})


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


async def publish_run_event(run_id: str, event: Mapping[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(run_group(run_id), {"type": "run.event", "event": dict(event)})
    except Exception:  # the layer (Redis) being down must never fail a run
        logger.warning("Could not publish event %s of %s", event.get("seq"), run_id, exc_info=True)
