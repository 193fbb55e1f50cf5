"""State kept per asyncio event loop (a server has one loop; tests and commands make many)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def loop_local(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter of the running loop's own `factory()`, made on first use and dropped with the loop."""
    instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def of_running_loop() -> T:
        loop = asyncio.get_running_loop()
        if loop not in instances:
            instances[loop] = factory()
        return instances[loop]

    return of_running_loop
