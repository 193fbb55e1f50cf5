"""Per-agent circuit breaker: a pure state machine over small frozen snapshots (which the Django side
can keep in a cache shared by processes), and an in-memory CircuitBreaker built on it.

closed --N consecutive failures--> open --cool-down--> half_open --success--> closed
                                                        half_open --failure--> open
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5
    cooldown_s: float = 30.0

    def __post_init__(self):
        if self.failure_threshold < 1 or self.cooldown_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s >= 0")


@dataclass(frozen=True)
class BreakerSnapshot:
    """One agent's breaker. Store it with `dataclasses.asdict`, restore it with `BreakerSnapshot(**d)`;
    `opened_at` is a time on whatever clock the callers pass as `now` (wall clock across processes)."""

    state: BreakerState = "closed"
    consecutive_failures: int = 0
    opened_at: float | None = None


def breaker_advance(snapshot: BreakerSnapshot, policy: BreakerPolicy, *, now: float) -> BreakerSnapshot:
    """The snapshot as of `now`: an open breaker whose cool-down has passed is half-open."""
    if snapshot.state == "open" and now - (snapshot.opened_at or 0.0) >= policy.cooldown_s:
        return replace(snapshot, state="half_open")
    return snapshot


def breaker_allows(snapshot: BreakerSnapshot, policy: BreakerPolicy, *, now: float) -> bool:
    """Whether a call may go ahead: yes unless open (half-open lets calls probe the agent)."""
    return breaker_advance(snapshot, policy, now=now).state != "open"


def breaker_record(
    snapshot: BreakerSnapshot, policy: BreakerPolicy, *, now: float, success: bool
) -> BreakerSnapshot:
    """The snapshot after a call's outcome: a success closes it; a failure opens it once the failures
    in a row reach the threshold, or at once when half-open."""
    if success:
        return BreakerSnapshot()
    current = breaker_advance(snapshot, policy, now=now)
    failures = current.consecutive_failures + 1
    if current.state == "half_open" or failures >= policy.failure_threshold:
        return BreakerSnapshot("open", failures, opened_at=now)
    return BreakerSnapshot("closed", failures)


class InMemoryCircuitBreaker:
    """The CircuitBreaker protocol for one process (tests, a single server)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.policy = BreakerPolicy(failure_threshold, cooldown_s)
        self._clock = clock
        self._snapshots: dict[str, BreakerSnapshot] = {}

    async def allow(self, agent_id: str) -> bool:
        return breaker_allows(self._snapshot(agent_id), self.policy, now=self._clock())

    async def record(self, agent_id: str, *, success: bool) -> None:
        self._snapshots[agent_id] = breaker_record(
            self._snapshot(agent_id), self.policy, now=self._clock(), success=success
        )

    def state(self, agent_id: str) -> BreakerState:
        """The agent's breaker state now (an agent never seen is closed)."""
        return breaker_advance(self._snapshot(agent_id), self.policy, now=self._clock()).state

    def _snapshot(self, agent_id: str) -> BreakerSnapshot:
        return self._snapshots.get(agent_id, BreakerSnapshot())
