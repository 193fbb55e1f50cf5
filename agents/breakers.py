"""Circuit breakers shared by every server process: the runtime's pure state machine with its
snapshots kept in the cache (Redis in production). A cache outage leaves breakers closed, so
runs keep working from the database.

A call costs one cache read, made from the event loop without a thread (studio.loop_cache: async
Redis, or the local-memory cache called in place): `allow` reads the agent's snapshot (so a
breaker opened by any process refuses the very next call, no delay), and a success recorded up
to RESET_UNREAD_S after that read, when it showed the breaker closed with no failure, writes
nothing (a success only ever writes the closed snapshot, which is what was there). The price:
failures another process records in that interval (at most RESET_UNREAD_S) are not cleared by
this success; they can only make a breaker open sooner, never keep it closed. A failure reads
the snapshot again and writes it."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from django.core.cache import cache

from agents.runtime.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    BreakerState,
    breaker_advance,
    breaker_allows,
    breaker_record,
)
from studio.loop_cache import cache_get, cache_set

logger = logging.getLogger(__name__)

POLICY = BreakerPolicy(failure_threshold=5, cooldown_s=30.0)
SNAPSHOT_TTL_S = 24 * 3600
RESET_UNREAD_S = 1.0  # how long after `allow` read a clean snapshot a success may skip its write


def _key(agent_id: str) -> str:
    return f"breaker:{agent_id}"


async def _load(agent_id: str) -> BreakerSnapshot:
    try:
        stored = await cache_get(_key(agent_id))
    except Exception:
        logger.warning("Breaker state of %s unavailable", agent_id, exc_info=True)
        return BreakerSnapshot()
    return BreakerSnapshot(**stored) if stored else BreakerSnapshot()


class CacheCircuitBreaker:
    """The runtime's CircuitBreaker protocol over the shared cache (one per run)."""

    def __init__(self, policy: BreakerPolicy = POLICY):
        self.policy = policy
        self._clean_at: dict[str, float] = {}  # agent -> when `allow` last read it closed, 0 failures

    async def allow(self, agent_id: str) -> bool:
        snapshot = await _load(agent_id)
        if snapshot == BreakerSnapshot():
            self._clean_at[agent_id] = time.monotonic()
        else:
            self._clean_at.pop(agent_id, None)
        return breaker_allows(snapshot, self.policy, now=time.time())

    async def record(self, agent_id: str, *, success: bool) -> None:
        clean_at = self._clean_at.pop(agent_id, None)
        if success and clean_at is not None and time.monotonic() - clean_at < RESET_UNREAD_S:
            return  # the stored snapshot was already the closed one a success writes
        # A success closes the breaker, whatever was there; a failure counts on what is stored.
        current = BreakerSnapshot() if success else await _load(agent_id)
        snapshot = breaker_record(current, self.policy, now=time.time(), success=success)
        try:
            await cache_set(_key(agent_id), asdict(snapshot), timeout=SNAPSHOT_TTL_S)
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
