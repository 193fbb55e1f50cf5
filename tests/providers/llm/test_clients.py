"""One pooled SDK client per provider settings and event loop."""

from __future__ import annotations

import asyncio
import logging

from providers.llm import clients
from providers.llm.clients import cached_client, close_clients
from providers.llm.types import CompletionRequest, Message


class FakeClient:
    def __init__(self, settings):
        self.settings = settings
        self.closed = False

    async def close(self):
        self.closed = True


async def test_equal_settings_share_a_client_and_other_settings_get_their_own(openai_provider):
    first = cached_client(openai_provider.settings(), FakeClient)
    again = cached_client(openai_provider.settings(), FakeClient)
    rotated = cached_client(openai_provider.settings(api_key="rotated-key"), FakeClient)

    assert first is again
    assert rotated is not first


def test_each_event_loop_gets_its_own_client(openai_provider):
    async def client_and_close():
        client = cached_client(openai_provider.settings(), FakeClient)
        await close_clients()
        return client

    first, second = asyncio.run(client_and_close()), asyncio.run(client_and_close())

    assert first is not second
    assert first.closed and second.closed


async def test_the_least_recently_used_client_is_closed_after_a_grace_period(openai_provider, monkeypatch):
    monkeypatch.setattr(clients, "MAX_CLIENTS", 2)
    monkeypatch.setattr(clients, "EVICTED_CLIENT_GRACE_S", 0.05)
    oldest, kept = (cached_client(openai_provider.settings(api_key=key), FakeClient) for key in ("a", "b"))

    cached_client(openai_provider.settings(api_key="c"), FakeClient)
    await asyncio.sleep(0.01)
    closed_at_once = oldest.closed
    await asyncio.sleep(0.1)

    assert not closed_at_once and oldest.closed  # calls still using it had time to finish
    assert cached_client(openai_provider.settings(api_key="b"), FakeClient) is kept


async def test_an_evicted_client_that_fails_to_close_is_logged(openai_provider, monkeypatch, caplog):
    class FailingClient(FakeClient):
        async def close(self):
            self.closed = True
            raise OSError("connection reset while closing")

    monkeypatch.setattr(clients, "MAX_CLIENTS", 1)
    monkeypatch.setattr(clients, "EVICTED_CLIENT_GRACE_S", 0.0)
    evicted = cached_client(openai_provider.settings(api_key="a"), FailingClient)

    with caplog.at_level(logging.ERROR, logger=clients.__name__):
        cached_client(openai_provider.settings(api_key="b"), FakeClient)
        while not evicted.closed:  # the close is scheduled, then started
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # its end is reported on the next turn of the loop

    (logged,) = [record for record in caplog.records if record.name == clients.__name__]
    assert str(logged.exc_info[1]) == "connection reset while closing"


async def test_calls_through_the_adapter_reuse_one_connection(openai_provider):
    adapter = openai_provider.adapter()
    request = CompletionRequest(messages=(Message(role="user", content="hi"),), model="gpt-4o-mini")

    for _ in range(3):
        await adapter.complete(request)

    peers = {request.peer for request in openai_provider.server.requests}
    assert len(peers) == 1
