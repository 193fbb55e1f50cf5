"""One SDK client (and so one connection pool) per provider settings and event loop.

SDK clients are async and bound to the loop that first used them, so they are created lazily, per
running loop, and reused by every call with equal `ProviderSettings` (a rotated key is new settings).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from providers.llm.types import ProviderSettings

MAX_CLIENTS = 64
# An evicted client may still serve calls in flight: it is closed only after this grace period.
EVICTED_CLIENT_GRACE_S = 900.0

Client = TypeVar("Client")

logger = logging.getLogger(__name__)

_clients: OrderedDict[tuple[asyncio.AbstractEventLoop, ProviderSettings], Any] = OrderedDict()
_lock = threading.Lock()
_closing: set[asyncio.Task] = set()  # referenced until done, so the loop cannot drop them


def cached_client(settings: ProviderSettings, build: Callable[[ProviderSettings], Client]) -> Client:
    """The running loop's client for `settings`, built by `build` on first use."""
    key = (asyncio.get_running_loop(), settings)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
        _forget_closed_loops()
        client = _clients[key] = build(settings)
        while len(_clients) > MAX_CLIENTS:
            (loop, _), evicted = _clients.popitem(last=False)
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.call_later, EVICTED_CLIENT_GRACE_S, _close_soon, evicted)
        return client


async def close_clients() -> None:
    """Close the running loop's clients (call before the loop ends: ASGI shutdown, test teardown)."""
    loop = asyncio.get_running_loop()
    with _lock:
        mine = [key for key in _clients if key[0] is loop]
        clients = [_clients.pop(key) for key in mine]
    for client in clients:
        await client.close()


def _forget_closed_loops() -> None:
    for key in [key for key in _clients if key[0].is_closed()]:
        del _clients[key]


def _close_soon(client: Any) -> None:
    task = asyncio.get_running_loop().create_task(client.close())
    _closing.add(task)
    task.add_done_callback(_closed)


def _closed(task: asyncio.Task) -> None:
    _closing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("Closing an evicted provider client failed", exc_info=task.exception())
