"""The authenticated WebSocket path: Channels' communicator and a real daphne server."""

from __future__ import annotations

import json

import pytest
import websockets

from accounts.services import tokens_for
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(path, headers=None, subprotocols=None):
    return await open_communicator(
        path, headers=headers or [(b"origin", b"http://127.0.0.1:8000")], subprotocols=subprotocols
    )


@pytest.fixture
def access_token(member):
    return tokens_for(member)["access"]


def _ws_metric(name):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name) or 0


async def test_ping_with_a_query_token_answers_pong(access_token, member):
    opened_before = _ws_metric("studio_websocket_connections_opened_total")
    communicator, connected, _ = await _connect(f"/api/ws/ping?token={access_token}")
    assert connected
    assert _ws_metric("studio_websocket_connections_opened_total") == opened_before + 1
    open_now = _ws_metric("studio_websocket_connections")
    await communicator.send_json_to({"type": "ping", "data": 7})
    pong = await communicator.receive_json_from()
    assert pong["type"] == "pong" and pong["user_id"] == member.pk and pong["data"] == 7
    await communicator.disconnect()
    assert _ws_metric("studio_websocket_connections") == open_now - 1


async def test_ping_with_the_bearer_subprotocol(access_token):
    communicator, connected, subprotocol = await _connect(
        "/api/ws/ping", subprotocols=["bearer", access_token]
    )
    assert connected and subprotocol == "bearer"
    await communicator.disconnect()


@pytest.mark.parametrize("token", [None, "garbage", "eyJhbGciOiJub25lIn0.e30."])
async def test_missing_or_bad_tokens_are_refused(token):
    path = "/api/ws/ping" + (f"?token={token}" if token else "")
    communicator, connected, code = await _connect(path)
    assert not connected
    assert code == 4401


async def test_a_foreign_origin_is_refused(access_token):
    communicator, connected, _ = await _connect(
        f"/api/ws/ping?token={access_token}", headers=[(b"origin", b"https://evil.example")]
    )
    assert not connected


async def test_malformed_frames_get_an_error_frame_and_the_socket_stays_open(access_token):
    communicator, connected, _ = await _connect(f"/api/ws/ping?token={access_token}")
    await communicator.send_to(text_data="not json")
    assert (await communicator.receive_json_from())["error"]["code"] == "malformed_frame"
    await communicator.send_json_to({"type": "dance"})
    assert (await communicator.receive_json_from())["error"]["code"] == "unknown_type"
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from())["type"] == "pong"
    await communicator.disconnect()


@pytest.mark.live
async def test_ping_through_a_real_daphne_server(daphne_server, access_token):
    async with websockets.connect(f"{daphne_server.ws_url}/api/ws/ping?token={access_token}") as socket:
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await socket.recv())["type"] == "pong"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(f"{daphne_server.ws_url}/api/ws/ping?token=bad"):
            pass
