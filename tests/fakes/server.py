"""The machinery shared by the fake LLM servers: a real aiohttp server on 127.0.0.1 in its own thread
(tests/fakes/threaded.py), with the API key check, scripted behaviours and recording they share.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.behaviours import Behaviour
from tests.fakes.threaded import ThreadedServer

HUGE_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    json: Any
    query: Mapping[str, str]
    peer: str  # the client's address and port: equal for requests on one kept-alive connection


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def words(text: str) -> list[str]:
    """`text` cut into word pieces that join back to it exactly."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


class FakeLLMServer(ThreadedServer):
    """Base of the fake providers: lifecycle, API key check, scripted behaviours, recording.

    Subclasses add their routes and render answers in their provider's wire format.
    """

    handler_cancellation = True  # a client that gives up ends a drip
    backlog = 2048

    def __init__(self, *, api_key: str = "test-key", latency_s: float = 0.0):
        self.api_key = api_key
        self.latency_s = latency_s  # added to every request (benchmarks)
        self.requests: list[RecordedRequest] = []
        self._behaviours: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        super().__init__()

    # ---- addresses ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an SDK takes as its base URL."""
        return f"{self.url}/v1"

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        self.add_routes(app)
        return app

    # ---- scripting ----------------------------------------------------------------------------

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Script the next requests, one behaviour each, in order."""
        with self._lock:
            self._behaviours.extend(behaviours)

    def reset(self, *, api_key: str = "test-key") -> None:
        """Forget scripted behaviours and recorded requests, and set the valid key."""
        with self._lock:
            self._behaviours.clear()
            self.requests.clear()
        self.api_key = api_key
        self.latency_s = 0.0

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviours.popleft() if self._behaviours else Behaviour()

    # ---- request handling ---------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Register the provider's endpoints, each wrapped by `handler`."""
        raise NotImplementedError

    def presented_key(self, request: web.Request) -> str:
        """The API key the client sent, from wherever the provider expects it."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The provider's JSON error document."""
        raise NotImplementedError

    def unauthorized_message(self, presented_key: str) -> str:
        """The provider's message for a rejected key."""
        raise NotImplementedError

    def handler(self, answer_with):
        """Wrap a route: record, apply latency, check the key, then play the next behaviour."""

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.json() if request.can_read_body else None
            self._record(request, body)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            presented = self.presented_key(request)
            if presented != self.api_key:
                return self.error(401, self.unauthorized_message(presented))
            behaviour = self._next_behaviour()
            if behaviour.delay_s:
                await asyncio.sleep(behaviour.delay_s)
            return await self._play(request, body, behaviour, answer_with)

        return handle

    def _record(self, request: web.Request, body: Any) -> None:
        host, port = request.transport.get_extra_info("peername")[:2]
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            json=body,
            query=dict(request.query),
            peer=f"{host}:{port}",
        )
        with self._lock:
            self.requests.append(recorded)

    async def _play(self, request, body, behaviour: Behaviour, answer_with) -> web.StreamResponse:
        if 300 <= behaviour.status < 400:
            return web.Response(status=behaviour.status, headers=behaviour.headers)
        if behaviour.status != 200:
            return self.error(behaviour.status, behaviour.error_message, headers=behaviour.headers)
        if behaviour.drip:
            return await self._drip(request, behaviour.drip_interval_s)
        if behaviour.huge_bytes:
            return await self._huge(request, behaviour)
        return await answer_with(request, body, behaviour)

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.json_response(self.error_body(status, message), status=status, headers=headers)

    async def _drip(self, request: web.Request, interval_s: float) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b" ")
                await asyncio.sleep(interval_s)
        except ConnectionResetError:  # the client gave up, as it should
            return response

    async def _huge(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if behaviour.declare_length:
            response.content_length = behaviour.huge_bytes
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        remaining = behaviour.huge_bytes
        try:
            while remaining > 0:
                size = min(remaining, HUGE_CHUNK_BYTES)
                await response.write(b" " * size)
                remaining -= size
            await response.write_eof()
        except ConnectionResetError:  # the client refused the body, as it should
            pass
        return response

    async def send_events(
        self, request: web.Request, frames: list[bytes], behaviour: Behaviour
    ) -> web.StreamResponse:
        """Stream server-sent event frames as the behaviour says (pauses, a dropped connection)."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for sent, frame in enumerate(frames):
            if sent == behaviour.cut_after_frames:
                request.transport.abort()
                return response
            await response.write(frame)
            if behaviour.chunk_delay_s:
                await asyncio.sleep(behaviour.chunk_delay_s)
        await response.write_eof()
        return response


def sse_frame(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()
