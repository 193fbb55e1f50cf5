"""The event bus: run events go to the run's channel-layer group, so a WebSocket client on any
server process can follow. Publishing is best effort: clients resume from stored events by seq.

On Redis the events of a run nobody follows are not sent: one ZCARD of the group for the events
one write stored (`publish_run_events`) instead of the group_send's own round trips (most runs,
deployment calls above all, have no follower). This misses no event: events are published only
once stored (committed), and every follower joins the group before it replays the stored events
(observability/consumers.py, queue.py, deployments/serving.py). So a follower either joined
before the count, and is sent the events, or after it, and its replay reads them from the
database. For the same reason the events of the write that stores a new run are not published
at all (observability/recorder.py): no one can follow a run before its row is committed."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

# The events that end a run: a client following it stops after one of them.
FINAL_EVENTS = frozenset({"run.completed", "run.failed"})


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


async def publish_run_event(run_id: str, event: Mapping[str, Any]) -> None:
    await publish_run_events(run_id, [event])


async def publish_run_events(run_id: str, events: Sequence[Mapping[str, Any]]) -> None:
    """Sends the events (stored by one write, in seq order) to the run's group, if it has a
    member then: one check for all of them."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    group = run_group(run_id)
    try:
        if await _followed(layer, group):
            for event in events:
                await layer.group_send(group, {"type": "run.event", "event": dict(event)})
    except Exception:  # the layer (Redis) being down must never fail a run
        seqs = [event.get("seq") for event in events]
        logger.warning("Could not publish events %s of %s", seqs, run_id, exc_info=True)


async def _followed(layer, group: str) -> bool:
    """Whether the group has a member (on Redis, in the group's own sorted set, where group_send
    would look); other layers are always sent to."""
    if not isinstance(layer, RedisChannelLayer):
        return True
    connection = layer.connection(layer.consistent_hash(group))
    return await connection.zcard(layer._group_key(group)) > 0
