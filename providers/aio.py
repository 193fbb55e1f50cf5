"""Calling the async engine from synchronous code (DRF views, management commands).

Under daphne, `async_to_sync` runs the work on the server's event loop, where pooled provider
connections are kept for later calls. Elsewhere (commands, tests) it runs on a private loop that
ends with the call, so the pooled clients of that loop are closed before it does."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import async_to_sync

from providers.llm.clients import close_clients

P = ParamSpec("P")
R = TypeVar("R")

_server_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def mark_server_loop() -> None:
    """Called by the ASGI application: the running loop lives as long as the server."""
    _server_loops.add(asyncio.get_running_loop())


def on_server_loop() -> bool:
    """Whether the running loop is the server's (work spawned on it outlives the call)."""
    return asyncio.get_running_loop() in _server_loops


def run_sync(async_fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
    async def call() -> R:
        try:
            return await async_fn(*args, **kwargs)
        finally:
            if asyncio.get_running_loop() not in _server_loops:
                await close_clients()

    return async_to_sync(call)()
