"""Fixtures of the deployment tests that watch how a call reaches the cache."""

from __future__ import annotations

import pytest
import redis.asyncio
from asgiref.sync import SyncToAsync


@pytest.fixture
def thread_hops(monkeypatch):
    """The functions run on a worker thread from the event loop (`sync_to_async`, which Django's
    async cache API and async ORM calls go through), by name, while the test runs."""
    hops: list[str] = []
    real = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return hops


@pytest.fixture
def redis_commands(monkeypatch):
    """The commands sent over async Redis (studio.loop_cache), one per round trip."""
    sent: list[str] = []
    real = redis.asyncio.Redis.execute_command

    async def counting(self, *args, **options):
        sent.append(str(args[0]).upper())
        return await real(self, *args, **options)

    monkeypatch.setattr(redis.asyncio.Redis, "execute_command", counting)
    return sent
