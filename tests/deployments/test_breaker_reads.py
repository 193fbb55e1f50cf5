"""The circuit breaker of an agent call (agents/breakers.py CacheCircuitBreaker) costs one cache
read when the agent is healthy, and still refuses the very next call once any process opened it."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache, caches

from agents import breakers
from agents.breakers import POLICY, CacheCircuitBreaker, breaker_states
from agents.runtime.breaker import BreakerSnapshot

AGENT = "agent-" + "b" * 32


class Counting:
    """The cache, counting the operations the breaker sends to it."""

    def __init__(self):
        self.sent: list[str] = []

    def __getattr__(self, name):
        operation = getattr(cache, name)

        def counted(*args, **kwargs):
            self.sent.append(name)
            return operation(*args, **kwargs)

        return counted


@pytest.fixture
def counted(monkeypatch):
    counting = Counting()
    monkeypatch.setattr(breakers, "cache", counting)
    return counting.sent


def a_call(breaker: CacheCircuitBreaker, *, success: bool = True) -> bool:
    allowed = async_to_sync(breaker.allow)(AGENT)
    if allowed:
        async_to_sync(breaker.record)(AGENT, success=success)
    return allowed


def another_process_opens_it() -> None:
    opened = BreakerSnapshot("open", POLICY.failure_threshold, opened_at=breakers.time.time())
    caches.create_connection("default").set(breakers._key(AGENT), asdict(opened), timeout=60)


def test_a_healthy_call_is_one_read_and_no_write(counted):
    assert a_call(CacheCircuitBreaker())
    assert counted == ["get"]


def test_a_breaker_opened_by_another_process_refuses_the_very_next_call():
    breaker = CacheCircuitBreaker()
    assert a_call(breaker)
    another_process_opens_it()
    assert not a_call(breaker)
    assert not a_call(CacheCircuitBreaker())


def test_failures_open_it_and_a_success_after_failures_closes_it(counted):
    for _ in range(POLICY.failure_threshold - 1):
        assert a_call(CacheCircuitBreaker(), success=False)
    assert breaker_states([AGENT])[AGENT] == "closed"
    counted.clear()
    assert a_call(CacheCircuitBreaker(), success=True)  # failures were stored: the success writes
    assert counted == ["get", "set"]
    assert cache.get(breakers._key(AGENT)) == asdict(BreakerSnapshot())

    for _ in range(POLICY.failure_threshold):
        a_call(CacheCircuitBreaker(), success=False)
    assert breaker_states([AGENT])[AGENT] == "open"
    assert not a_call(CacheCircuitBreaker())


def test_a_success_long_after_its_read_writes_the_closed_snapshot(counted, monkeypatch):
    breaker = CacheCircuitBreaker()
    assert async_to_sync(breaker.allow)(AGENT)
    now = breakers.time.monotonic()
    monkeypatch.setattr(breakers.time, "monotonic", lambda: now + breakers.RESET_UNREAD_S + 1)
    async_to_sync(breaker.record)(AGENT, success=True)
    assert counted == ["get", "set"]
