"""Timing of a call: its total deadline, kept while a stream is consumed piece by piece."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

Item = TypeVar("Item")


def deadline_in(seconds: float) -> float:
    """The loop time `seconds` from now, for `asyncio.timeout_at`."""
    return asyncio.get_running_loop().time() + seconds


async def before_deadline(source: AsyncIterable[Item], deadline: float) -> AsyncIterator[Item]:
    """Yield from `source`, raising `TimeoutError` once waiting for its next item passes `deadline`.

    The timeout covers only the waits on `source`: a timeout scope held open across `yield` would
    cancel whatever the consumer happens to be awaiting at the deadline instead.
    """
    iterator = aiter(source)
    while True:
        async with asyncio.timeout_at(deadline):
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
        yield item


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` reading)."""
    return round((time.perf_counter() - started) * 1000, 3)
