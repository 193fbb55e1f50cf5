"""The lifecycle of the fakes that are aiohttp servers: bound to a free port of 127.0.0.1 at once,
served by a thread with an event loop of its own, stopped and joined on `stop()` or `with` exit.

Running in a background thread with its own event loop lets sync tests (Django's test client) and
async tests (any pytest-asyncio loop) talk to the same server over real sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Self

from aiohttp import web


class ThreadedServer:
    """Subclasses build their `web.Application` in `build_app`."""

    handler_cancellation = False  # cancel a handler whose client went away
    backlog = 128

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]

    def build_app(self) -> web.Application:
        raise NotImplementedError

    def start(self) -> Self:
        """Serve in a background thread; returns once the socket accepts connections."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        ready.wait(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (cancels responses still in progress)."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(
            self.build_app(),
            shutdown_timeout=0.5,
            handler_cancellation=self.handler_cancellation,
            access_log=None,
        )
        self._loop.run_until_complete(self._runner.setup())
        site = web.SockSite(self._runner, self._socket, backlog=self.backlog)
        self._loop.run_until_complete(site.start())
        ready.set()
        self._loop.run_forever()
        self._loop.close()
