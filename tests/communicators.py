"""In-process WebSocket clients (Channels' communicator) for the consumer tests.

Every client a test opens is disconnected when the test ends (import `communicators_disconnected`
into the test module): a consumer left running is still waiting on the channel layer when the
test's event loop is torn down, and with the Redis layer that teardown could hang (seen in a full run:
the loop waiting on a cancelled consumer for ever)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from accounts.services import tokens_for
from studio.asgi import application

_opened: list[WebsocketCommunicator] = []


async def open_communicator(path: str, *, user=None, headers=None, subprotocols=None):
    """Connects to `path` (as `user`, with a token in the query string, when given); returns the
    communicator, whether it was accepted, and the close code or subprotocol."""
    if user is not None:
        token = await sync_to_async(lambda: tokens_for(user)["access"])()
        path = f"{path}{'&' if '?' in path else '?'}token={token}"
    communicator = WebsocketCommunicator(application, path, headers=headers, subprotocols=subprotocols)
    _opened.append(communicator)
    connected, detail = await communicator.connect()
    return communicator, connected, detail


@pytest.fixture(autouse=True)
async def communicators_disconnected():
    yield
    while _opened:
        await _opened.pop().disconnect()
    # The next test runs on another event loop: it gets a channel layer (and Redis pools) of its own
    # rather than one whose receive state belonged to this loop.
    for layer in channel_layers.backends.values():
        if hasattr(layer, "close_pools"):
            await layer.close_pools()
    channel_layers.backends = {}
