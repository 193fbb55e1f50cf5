"""A webhook receiver on 127.0.0.1: a real aiohttp server in its own thread (tests/fakes/threaded.py)
that checks each delivery's signature the way a customer's endpoint would (written from the
documented scheme, not from our code), records it, and answers with scripted statuses (200 when
nothing is scripted)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.threaded import ThreadedServer

TOLERANCE_S = 300  # how old a signature's timestamp may be


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes
    signature_valid: bool
    status: int  # what the receiver answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.headers.get("Studio-Event", "")

    @property
    def delivery_id(self) -> str:
        return self.headers.get("Studio-Delivery", "")


def signature_valid(secret: str, signature_header: str, body: bytes, *, now: float | None = None) -> bool:
    """`t=<unix>,v1=<hex>`: HMAC-SHA256 of `<t>.<body>` keyed with the secret, t recent."""
    try:
        parts = dict(item.split("=", 1) for item in signature_header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookReceiver(ThreadedServer):
    def __init__(self) -> None:
        self.secret = ""  # set once the webhook is created (the secret is shown then)
        self.received: list[Received] = []
        self._statuses: deque[int] = deque()
        self._lock = threading.Lock()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/studio"

    def answer(self, *statuses: int) -> None:
        """Answer the next deliveries with these statuses, in order (then 200)."""
        with self._lock:
            self._statuses.extend(statuses)

    def reset(self) -> None:
        with self._lock:
            self.secret, self.received = "", []
            self._statuses.clear()

    def of_event(self, event: str) -> list[Received]:
        return [received for received in self.received if received.event == event]

    async def wait_for(
        self, count: int, *, event: str | None = None, timeout_s: float = 10.0
    ) -> list[Received]:
        """Waits until `count` deliveries (of `event`, when given) arrived; returns them."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.of_event(event) if event else list(self.received)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.02)

    # ---- serving ---------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._deliver)
        return app

    async def _deliver(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            status = self._statuses.popleft() if self._statuses else 200
            valid = signature_valid(self.secret, request.headers.get("Studio-Signature", ""), body)
            self.received.append(Received(request.path, dict(request.headers), body, valid, status))
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": "http://127.0.0.1:1/elsewhere"})
        return web.Response(status=status, text="ok" if status < 300 else "receiver says no " * 100)
