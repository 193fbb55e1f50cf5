"""The circuit breaker's pure state machine and its in-memory implementation."""

from __future__ import annotations

import dataclasses

import pytest

from agents.runtime.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    InMemoryCircuitBreaker,
    breaker_advance,
    breaker_allows,
    breaker_record,
)

POLICY = BreakerPolicy(failure_threshold=3, cooldown_s=10)


def failures(count: int, *, now: float = 0.0) -> BreakerSnapshot:
    snapshot = BreakerSnapshot()
    for _ in range(count):
        snapshot = breaker_record(snapshot, POLICY, now=now, success=False)
    return snapshot


def test_a_new_breaker_is_closed_and_allows_calls():
    assert BreakerSnapshot().state == "closed"
    assert breaker_allows(BreakerSnapshot(), POLICY, now=0)


def test_failures_below_the_threshold_keep_it_closed():
    assert failures(2) == BreakerSnapshot("closed", 2)


def test_the_threshold_of_consecutive_failures_opens_it():
    snapshot = failures(3, now=5.0)
    assert snapshot == BreakerSnapshot("open", 3, opened_at=5.0)
    assert not breaker_allows(snapshot, POLICY, now=14.9)


def test_a_success_resets_the_count_of_consecutive_failures():
    snapshot = breaker_record(failures(2), POLICY, now=0, success=True)
    assert snapshot == BreakerSnapshot()
    assert breaker_record(snapshot, POLICY, now=0, success=False).state == "closed"


def test_it_half_opens_after_the_cooldown():
    opened = failures(3, now=5.0)
    assert breaker_advance(opened, POLICY, now=14.9).state == "open"
    assert breaker_advance(opened, POLICY, now=15.0).state == "half_open"
    assert breaker_allows(opened, POLICY, now=15.0)


def test_a_success_while_half_open_closes_it():
    assert breaker_record(failures(3), POLICY, now=10, success=True) == BreakerSnapshot()


def test_a_failure_while_half_open_opens_it_again_for_a_new_cooldown():
    reopened = breaker_record(failures(3, now=0), POLICY, now=10, success=False)
    assert (reopened.state, reopened.opened_at) == ("open", 10)
    assert not breaker_allows(reopened, POLICY, now=19.9)
    assert breaker_allows(reopened, POLICY, now=20)


def test_snapshots_round_trip_through_plain_dicts():
    snapshot = failures(3, now=7.5)
    assert BreakerSnapshot(**dataclasses.asdict(snapshot)) == snapshot


@pytest.mark.parametrize("threshold, cooldown", [(0, 1), (1, -1)])
def test_a_policy_must_make_sense(threshold, cooldown):
    with pytest.raises(ValueError):
        BreakerPolicy(threshold, cooldown)


async def test_the_in_memory_breaker_tracks_each_agent_on_its_clock():
    now = [0.0]
    breaker = InMemoryCircuitBreaker(failure_threshold=2, cooldown_s=30, clock=lambda: now[0])
    await breaker.record("agent-1", success=False)
    await breaker.record("agent-1", success=False)
    assert breaker.state("agent-1") == "open" and not await breaker.allow("agent-1")
    assert breaker.state("agent-2") == "closed" and await breaker.allow("agent-2")
    now[0] = 30.0
    assert breaker.state("agent-1") == "half_open" and await breaker.allow("agent-1")
    await breaker.record("agent-1", success=False)
    assert breaker.state("agent-1") == "open"
    now[0] = 60.0
    await breaker.record("agent-1", success=True)
    assert breaker.state("agent-1") == "closed"
