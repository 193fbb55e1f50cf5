"""A real MCP server for the tests: the official SDK's FastMCP over streamable HTTP, served by uvicorn
on 127.0.0.1 in a thread of its own, so sync and async tests reach it over real sockets.

It offers two tools, `lookup_order` (an order's status) and `repeat_text` (a text repeated, to make
results as large as a test needs), records every call it serves, and answers 401 to a request
without its header (`X-Api-Key: <api_key>` by default). `stop()` then `start()` again simulates a
server that went down and came back on the same port.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP
from starlette.responses import JSONResponse

_request_headers: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "headers", default=None
)

ORDERS = {"42": {"order_id": "42", "status": "shipped", "carrier": "DHL"}}


@dataclass(frozen=True)
class ServedCall:
    tool: str
    arguments: dict[str, Any]
    headers: dict[str, str]


class FakeMcpServer:
    """`with FakeMcpServer() as server:` -> `server.url` is its MCP endpoint (`.../mcp`)."""

    def __init__(self, *, header: str = "X-Api-Key", api_key: str = "mcp-secret-key-1234"):
        self.header = header
        self.api_key = api_key
        self.calls: list[ServedCall] = []
        self.rejected = 0  # requests refused for a missing or wrong header
        self.delay_s = 0.0  # each tool waits this long before it answers (timeouts)
        self.sessions = 0  # MCP sessions opened (initialize requests)
        self._lock = threading.Lock()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def headers(self) -> dict[str, str]:
        """The header a client must send."""
        return {self.header: self.api_key}

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.rejected = 0
            self.delay_s = 0.0
            self.sessions = 0

    # ---- the MCP app ----------------------------------------------------------------------------

    def _app(self):
        mcp = FastMCP("fake-tools", stateless_http=True, json_response=True)
        record = self._record

        @mcp.tool(description="The status of an order, by its number.")
        async def lookup_order(order_id: str) -> dict[str, Any]:
            record("lookup_order", {"order_id": order_id})
            await asyncio.sleep(self.delay_s)
            if order_id not in ORDERS:
                raise ValueError(f"no order {order_id}")
            return ORDERS[order_id]

        @mcp.tool(description="Repeats a text a number of times.")
        async def repeat_text(text: str, times: int = 1) -> str:
            record("repeat_text", {"text": text, "times": times})
            await asyncio.sleep(self.delay_s)
            return text * times

        inner = mcp.streamable_http_app()
        lifespan = inner.router.lifespan_context

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                return await inner(scope, receive, send)
            headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
            if headers.get(self.header.lower()) != self.api_key:
                with self._lock:
                    self.rejected += 1
                response = JSONResponse({"error": "missing or wrong key"}, status_code=401)
                return await response(scope, receive, send)
            receive = self._counting_sessions(receive)
            _request_headers.set(headers)
            return await inner(scope, receive, send)

        app.lifespan = lifespan
        return app

    def _counting_sessions(self, receive):
        async def counted():
            message = await receive()
            if b'"method":"initialize"' in message.get("body", b"").replace(b" ", b""):
                with self._lock:
                    self.sessions += 1
            return message

        return counted

    def _record(self, tool: str, arguments: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append(ServedCall(tool, arguments, dict(_request_headers.get() or {})))

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeMcpServer:
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="FakeMcpServer", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake MCP server did not start")
            time.sleep(0.01)
        return self

    def ensure_running(self) -> None:
        if self._server is None:
            self.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeMcpServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
