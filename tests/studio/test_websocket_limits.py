"""WebSockets are bounded: a user's sockets past MAX_WEBSOCKETS_PER_USER are closed with 4429, and
a frame over MAX_REQUEST_BODY_BYTES closes the socket with 1009 (message too big) unparsed."""

from __future__ import annotations

import pytest

from studio.websocket import CLOSE_FRAME_TOO_LARGE, CLOSE_TOO_MANY_SOCKETS
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://127.0.0.1:8000")]


async def ping(user):
    communicator, connected, _ = await open_communicator("/api/ws/ping", user=user, headers=ORIGIN)
    return communicator, connected


async def test_the_socket_past_the_per_user_cap_is_closed_with_4429_while_others_connect(
    settings, member, owner
):
    settings.MAX_WEBSOCKETS_PER_USER = 3
    opened = [await ping(member) for _ in range(3)]
    assert all(connected for _, connected in opened)

    refused, connected = await ping(member)
    assert connected  # accepted, so that a browser sees the close code
    error = await refused.receive_json_from()
    assert error["type"] == "error" and error["error"]["code"] == "too_many_connections"
    assert (await refused.receive_output())["code"] == CLOSE_TOO_MANY_SOCKETS

    another_user, connected = await ping(owner)  # the cap is per user
    assert connected
    await another_user.send_json_to({"type": "ping"})
    assert (await another_user.receive_json_from())["type"] == "pong"

    # A socket that closes gives its place back.
    await opened[0][0].disconnect()
    again, connected = await ping(member)
    await again.send_json_to({"type": "ping"})
    assert (await again.receive_json_from())["type"] == "pong"


async def test_a_frame_over_the_limit_is_refused_with_1009(settings, member):
    settings.MAX_REQUEST_BODY_BYTES = 1024
    communicator, connected = await ping(member)
    assert connected
    await communicator.send_json_to({"type": "ping", "data": "x" * 1024})
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["error"]["code"] == "payload_too_large"
    assert (await communicator.receive_output())["code"] == CLOSE_FRAME_TOO_LARGE


async def test_a_binary_frame_over_the_limit_is_refused_too(settings, member):
    settings.MAX_REQUEST_BODY_BYTES = 1024
    communicator, _ = await ping(member)
    await communicator.send_to(bytes_data=b"x" * 2048)
    assert (await communicator.receive_json_from())["error"]["code"] == "payload_too_large"
    assert (await communicator.receive_output())["code"] == CLOSE_FRAME_TOO_LARGE


async def test_a_frame_at_the_limit_is_served(settings, member):
    settings.MAX_REQUEST_BODY_BYTES = 1024
    communicator, _ = await ping(member)
    frame = '{"type": "ping", "data": "' + "x" * (1024 - 28) + '"}'
    assert len(frame.encode()) == 1024
    await communicator.send_to(text_data=frame)
    assert (await communicator.receive_json_from())["type"] == "pong"
