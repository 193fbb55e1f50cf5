"""The event bus: run events go to the run's channel-layer group, so a WebSocket client on any
server process can follow. Publishing is best effort: clients resume from stored events by seq.

On Redis an event of a run nobody follows is not sent: one ZCARD of the group instead of the
group_send's own round trips (most runs, deployment calls above all, have no follower). This
misses no event: an event is published only once stored (committed), and every follower joins
the group before it replays the stored events (observability/consumers.py, queue.py,
deployments/serving.py). So a follower either joined before the count, and is sent the event, or
after it, and its replay reads the event from the database."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

# The events that end a run: a client following it stops after one of them.
FINAL_EVENTS = frozenset({"run.completed", "run.failed"})


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


async def publish_run_event(run_id: str, event: Mapping[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    group = run_group(run_id)
    try:
        if await _followed(layer, group):
            await layer.group_send(group, {"type": "run.event", "event": dict(event)})
    except Exception:  # the layer (Redis) being down must never fail a run
        logger.warning("Could not publish event %s of %s", event.get("seq"), run_id, exc_info=True)


async def _followed(layer, group: str) -> bool:
    """Whether the group has a member (on Redis, in the group's own sorted set, where group_send
    would look); other layers are always sent to."""
    if not isinstance(layer, RedisChannelLayer):
        return True
    connection = layer.connection(layer.consistent_hash(group))
    return await connection.zcard(layer._group_key(group)) > 0
