"""DNS rebinding: a host that resolves to a public address when the base URL is checked and to one of
ours when the connection is made never gets the connection. The transport connects only to addresses
it checked itself; DNS is simulated at `socket.getaddrinfo`, where every lookup of the process ends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from providers.llm.registry import create_adapter
from providers.llm.transport import build_http_client
from providers.llm.types import ProviderSettings, UnsafeProviderUrl

PUBLIC_ADDRESS = "93.184.216.34"
REBINDING_HOST = "rebind.example"  # public at the first lookup, 127.0.0.1 from then on
INTERNAL_HOST = "internal.example"  # always 127.0.0.1
LOCAL_NAME = "models.test"  # always 127.0.0.1, where private addresses are allowed


class Listener:
    """A TCP server on 127.0.0.1 standing for an internal service: it records who connects."""

    def __init__(self):
        self.connections: list[tuple] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Listener:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer.get_extra_info("peername"))
        writer.close()

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def internal_service() -> AsyncIterator[Listener]:
    listener = await Listener().start()
    yield listener
    await listener.stop()


@pytest.fixture
def dns(monkeypatch) -> list[str]:
    """Answers for the test names (other names resolve as usual); returns the lookups made."""
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in (REBINDING_HOST, INTERNAL_HOST, LOCAL_NAME):
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        first_rebinding_lookup = host == REBINDING_HOST and lookups.count(host) == 1
        address = PUBLIC_ADDRESS if first_rebinding_lookup else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.mark.parametrize("kind", ["openai_compatible", "anthropic"])
async def test_a_name_rebound_to_our_network_after_the_check_is_never_connected_to(
    kind, dns, internal_service
):
    adapter = create_adapter(
        ProviderSettings(
            kind=kind,
            api_key="test-key",
            base_url=f"https://{REBINDING_HOST}:{internal_service.port}/v1",
            allow_private_urls=False,
        )
    )

    result = await adapter.validate()

    assert internal_service.connections == []
    assert dns[:2] == [REBINDING_HOST, REBINDING_HOST]  # the call's check, then the connection's
    assert result.valid is False and result.error_code == "unsafe_provider_url"
    assert "resolves to 127.0.0.1" in result.error


@pytest.mark.parametrize(
    ("sdk", "transport"), [(openai, "aiohttp"), (anthropic, "aiohttp"), (openai, "httpx")]
)
async def test_every_transport_checks_the_addresses_it_connects_to(sdk, transport, dns, internal_service):
    settings = ProviderSettings(kind="openai_compatible", api_key="test-key", allow_private_urls=False)
    client = build_http_client(sdk, settings, transport=transport)
    try:
        with pytest.raises(UnsafeProviderUrl, match="resolves to 127.0.0.1"):
            await client.get(f"https://{INTERNAL_HOST}:{internal_service.port}/v1/models")
    finally:
        await client.aclose()
    assert internal_service.connections == []


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_the_connection_goes_to_the_resolved_address_and_keeps_the_host_name(
    transport, dns, fake_openai
):
    settings = ProviderSettings(kind="openai_compatible", api_key="test-key", allow_private_urls=True)
    client = build_http_client(openai, settings, transport=transport)
    try:
        response = await client.get(
            f"http://{LOCAL_NAME}:{fake_openai.port}/v1/models", headers={"Authorization": "Bearer test-key"}
        )
    finally:
        await client.aclose()
    assert response.status_code == 200
    assert dns == [LOCAL_NAME]
    assert fake_openai.requests[-1].headers["Host"] == f"{LOCAL_NAME}:{fake_openai.port}"
