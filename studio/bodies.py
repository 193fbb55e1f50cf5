"""Request bodies are bounded on every HTTP path (the API, the admin, /workflows, /mcp): past
`settings.MAX_REQUEST_BODY_BYTES` the answer is 413 `payload_too_large`, given before the rest of
the body is read. Without this, Django spools a body of any size to disk and the MCP SDK reads one
into memory whole. WebSocket frames are bounded by the same setting (studio.websocket)."""

from __future__ import annotations

import json

from django.conf import settings

from studio.api.errors import error_body


def body_too_large_message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes."


def bounded_bodies(app):
    """ASGI middleware: an HTTP request declaring (Content-Length) or sending more than the limit
    is answered 413 without reading on; a smaller body is read (at most the limit, in memory) and
    handed to `app` in one message, then `app` receives from the client as usual (disconnects)."""

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        limit = settings.MAX_REQUEST_BODY_BYTES
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await _too_large(send, limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before its body arrived: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _too_large(send, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return await app(scope, _replaying(b"".join(chunks), receive), send)

    return asgi


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length; counting still bounds it
    return None


def _replaying(body: bytes, receive):
    """A `receive` whose first message is the whole body, then the client's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay


async def _too_large(send, limit: int) -> None:
    body = json.dumps(error_body("payload_too_large", body_too_large_message(limit))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread rest of the body makes the connection unusable for another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
