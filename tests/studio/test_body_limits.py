"""Request bodies are bounded on every HTTP path: past MAX_REQUEST_BODY_BYTES (1 MiB by default)
the app answers 413 `payload_too_large` before it has read the rest, through the ASGI application
the server runs (the MCP endpoint, the HTTP deployment channel, the API)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from observability.models import Run
from studio.asgi import application
from tests.asgi_requests import http_scope
from tests.deployments.helpers import deploy

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
CHUNK = 64 * 1024


class DrippingClient:
    """An ASGI client that sends a body of `total` bytes in chunks, counting what the app read."""

    def __init__(self, total: int):
        self.chunks = total // CHUNK
        self.consumed = 0
        self.sent: list[dict] = []

    async def receive(self):
        if self.consumed >= self.chunks:
            raise AssertionError("the app read past the end of the body")
        self.consumed += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": self.consumed < self.chunks}

    async def send(self, message):
        self.sent.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def body(self) -> dict:
        return json.loads(
            b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        )


async def post_dripping(path: str, *, total: int, declare_length: bool, key: str | None = None):
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
    }
    if declare_length:
        headers["content-length"] = str(total)
    if key:
        headers["authorization"] = f"Bearer {key}"
    client = DrippingClient(total)
    await application(http_scope(path, method="POST", headers=headers), client.receive, client.send)
    return client


def assert_too_large(client: DrippingClient) -> None:
    assert client.status == 413
    assert client.body == {
        "error": {
            "code": "payload_too_large",
            "message": f"The request body is larger than the limit of {MIB} bytes.",
            "fields": {},
        }
    }


@pytest.fixture
def deployment_key(admin_user):
    _, key = deploy(admin_user, name="bounded", channels=["api", "mcp"])
    return key


async def test_a_2_mib_post_to_mcp_declaring_its_length_is_413_before_any_of_it_is_read(deployment_key):
    client = await post_dripping("/mcp/bounded", total=2 * MIB, declare_length=True, key=deployment_key)
    assert_too_large(client)
    assert client.consumed == 0


async def test_a_2_mib_chunked_post_to_mcp_is_413_once_past_the_limit_not_at_its_end(deployment_key):
    client = await post_dripping("/mcp/bounded", total=2 * MIB, declare_length=False, key=deployment_key)
    assert_too_large(client)
    assert client.consumed == MIB // CHUNK + 1  # the chunk that went past the limit, and no more
    assert client.consumed < client.chunks


@pytest.mark.parametrize("declare_length", [True, False])
async def test_the_http_deployment_channel_is_bounded_too(deployment_key, declare_length):
    client = await post_dripping(
        "/workflows/bounded/execute", total=2 * MIB, declare_length=declare_length, key=deployment_key
    )
    assert_too_large(client)
    assert client.consumed < client.chunks
    assert not await Run.objects.aexists()


async def test_the_api_is_bounded_too(member):
    client = await post_dripping("/api/auth/login", total=2 * MIB, declare_length=False)
    assert_too_large(client)
    assert client.consumed < client.chunks


async def test_the_limit_is_a_setting(deployment_key, settings):
    settings.MAX_REQUEST_BODY_BYTES = 4 * CHUNK
    client = await post_dripping("/mcp/bounded", total=8 * CHUNK, declare_length=False, key=deployment_key)
    assert client.status == 413 and client.consumed == 5


async def test_a_body_under_the_limit_reaches_the_app(deployment_key):
    """A body in several chunks under the limit is read whole and served as usual."""
    body = json.dumps({"inputs": {"inquiry": "Where is my refund?"}}).encode()
    pieces = [body[:10], body[10:20], body[20:]]
    sent: list[dict] = []

    async def receive():
        if not pieces:  # the body is all sent: the client waits for the answer
            await asyncio.Future()
        piece = pieces.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    async def send(message):
        sent.append(message)

    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {deployment_key}",
    }
    await application(http_scope("/workflows/bounded/execute", method="POST", headers=headers), receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 200, sent
    outputs = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert outputs["outputs"]["response"]
    assert await sync_to_async(Run.objects.filter(status="completed").count)() == 1
