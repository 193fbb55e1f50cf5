"""Circuit breakers shared by every server process: the runtime's pure state machine with its
snapshots kept in the cache (Redis in production). A cache outage leaves breakers closed, so
runs keep working from the database."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from asgiref.sync import sync_to_async
from django.core.cache import cache

from agents.runtime.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    BreakerState,
    breaker_advance,
    breaker_allows,
    breaker_record,
)

logger = logging.getLogger(__name__)

POLICY = BreakerPolicy(failure_threshold=5, cooldown_s=30.0)
SNAPSHOT_TTL_S = 24 * 3600


def _key(agent_id: str) -> str:
    return f"breaker:{agent_id}"


def _load(agent_id: str) -> BreakerSnapshot:
    try:
        stored = cache.get(_key(agent_id))
    except Exception:
        logger.warning("Breaker state of %s unavailable", agent_id, exc_info=True)
        return BreakerSnapshot()
    return BreakerSnapshot(**stored) if stored else BreakerSnapshot()


class CacheCircuitBreaker:
    """The runtime's CircuitBreaker protocol over the shared cache."""

    def __init__(self, policy: BreakerPolicy = POLICY):
        self.policy = policy

    async def allow(self, agent_id: str) -> bool:
        snapshot = await sync_to_async(_load)(agent_id)
        return breaker_allows(snapshot, self.policy, now=time.time())

    async def record(self, agent_id: str, *, success: bool) -> None:
        await sync_to_async(self._record)(agent_id, success)

    def _record(self, agent_id: str, success: bool) -> None:
        snapshot = breaker_record(_load(agent_id), self.policy, now=time.time(), success=success)
        try:
            cache.set(_key(agent_id), asdict(snapshot), timeout=SNAPSHOT_TTL_S)
        except Exception:
            logger.warning("Could not store breaker state of %s", agent_id, exc_info=True)


def breaker_states(agent_ids: list[str], policy: BreakerPolicy = POLICY) -> dict[str, BreakerState]:
    """The breaker state of each agent now, read in one cache round trip."""
    try:
        stored = cache.get_many([_key(agent_id) for agent_id in agent_ids])
    except Exception:
        logger.warning("Breaker states unavailable", exc_info=True)
        stored = {}
    now = time.time()
    return {
        agent_id: breaker_advance(BreakerSnapshot(**stored.get(_key(agent_id), {})), policy, now=now).state
        for agent_id in agent_ids
    }
