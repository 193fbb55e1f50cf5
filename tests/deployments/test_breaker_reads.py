"""The circuit breaker of an agent call (agents/breakers.py CacheCircuitBreaker) costs one cache
read when the agent is healthy, made from the event loop without a thread, and still refuses the
very next call once any process opened it."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache, caches

from agents import breakers
from agents.breakers import POLICY, CacheCircuitBreaker, breaker_states
from agents.runtime.breaker import BreakerSnapshot
from tests.studio.test_redis_down import DEAD_REDIS

AGENT = "agent-" + "b" * 32


@pytest.fixture
def counted(monkeypatch):
    """The cache operations the breaker sends (its reads and writes from the loop)."""
    sent: list[str] = []
    for name, operation in (("get", breakers.cache_get), ("set", breakers.cache_set)):

        async def counting(*args, _name=name, _operation=operation, **kwargs):
            sent.append(_name)
            return await _operation(*args, **kwargs)

        monkeypatch.setattr(breakers, f"cache_{name}", counting)
    return sent


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


def test_a_calls_breaker_reads_and_writes_take_no_thread(thread_hops, redis_commands):
    breaker = CacheCircuitBreaker()
    assert a_call(breaker, success=False)  # a failure: read in allow, read and write in record
    assert a_call(CacheCircuitBreaker())  # after a failure a success writes the closed snapshot
    assert a_call(CacheCircuitBreaker())  # healthy: one read
    assert thread_hops == []
    if settings.REDIS_URL:
        assert redis_commands == ["GET", "GET", "SET", "GET", "SET", "GET"]
    assert breaker_states([AGENT])[AGENT] == "closed"


def test_a_snapshot_written_from_the_loop_is_what_the_sync_cache_reads(redis_commands):
    for _ in range(POLICY.failure_threshold):
        a_call(CacheCircuitBreaker(), success=False)
    stored = caches.create_connection("default").get(breakers._key(AGENT))
    assert stored["state"] == "open" and stored["consecutive_failures"] == POLICY.failure_threshold
    assert breaker_states([AGENT])[AGENT] == "open"  # what the runtime status shows


def test_with_the_cache_down_the_breaker_stays_closed(settings, thread_hops):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DEAD_REDIS}
    }
    for _ in range(POLICY.failure_threshold + 1):
        assert a_call(CacheCircuitBreaker(), success=False)
    assert thread_hops == []
