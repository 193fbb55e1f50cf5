"""HTTP requests sent straight into an ASGI app, as a server would send them: no server, no sockets.

Used by the request path tests (tests/studio/test_request_path.py) and the in-process request
profile (benchmarks/request_profile.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping


def http_scope(path_and_query: str, *, method: str = "GET", headers: Mapping[str, str] | None = None) -> dict:
    """The scope of a request of `path_and_query` (`/api/agents?limit=20`) with `headers` (a Host
    of 127.0.0.1 unless they name one)."""
    path, _, query = path_and_query.partition("?")
    headers = {"host": "127.0.0.1", **{name.lower(): value for name, value in (headers or {}).items()}}
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def asgi_request(app, scope: dict) -> list[dict]:
    """Runs one request without a body through `app`; returns the messages it sent."""
    sent: list[dict] = []
    answered = asyncio.Event()
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    return sent


def asgi_get(app, path: str) -> tuple[int, dict[bytes, list[bytes]], bytes]:
    """One GET through the ASGI app on an event loop of its own: status, headers by lowercase name, body."""
    messages = asyncio.run(asgi_request(app, http_scope(path)))
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers: dict[bytes, list[bytes]] = {}
    for name, value in start["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], headers, body
