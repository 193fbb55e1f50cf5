"""The HTTP client under the SDKs: transport, pool, timeouts, no redirects, bounded response bodies,
and connections only to the addresses the SSRF check accepted."""

from __future__ import annotations

import importlib
import socket
from collections.abc import AsyncIterator
from types import ModuleType

import aiohttp
import httpcore2
import httpx2

from providers.llm.types import ProviderSettings
from providers.llm.urlsafety import check_addresses, resolve_host

# Measured by benchmarks/llm_transport.py (numbers in benchmarks/README.md): "aiohttp" uses the
# SDK's DefaultAioHttpClient, "httpx" its default httpx2 transport.
TRANSPORT = "aiohttp"

# Enough kept-alive connections for a few hundred concurrent calls to one provider.
POOL_LIMITS = httpx2.Limits(max_connections=512, max_keepalive_connections=256, keepalive_expiry=30)

# Per-attempt read timeout until a call sets its own; the call's total deadline is enforced above.
DEFAULT_READ_TIMEOUT_S = 600.0


class ResponseTooLarge(Exception):
    """The provider sent more than `ProviderSettings.max_response_bytes`."""


def build_http_client(sdk: ModuleType, settings: ProviderSettings, *, transport: str = TRANSPORT):
    """An httpx2 client for `sdk` (the `openai` or `anthropic` module) that never follows redirects,
    refuses bodies larger than the settings allow and connects to vetted addresses only."""
    if transport == "aiohttp":
        factory, pinned = sdk.DefaultAioHttpClient, _aiohttp_transport(sdk, settings)
    else:
        factory, pinned = sdk.DefaultAsyncHttpxClient, _httpx_transport(settings)
    return factory(
        transport=pinned,  # carries the pool limits: a client given a transport ignores its own
        timeout=httpx2.Timeout(DEFAULT_READ_TIMEOUT_S, connect=settings.connect_timeout_s),
        # A redirect could point a vetted base URL at an internal host: a 3xx is an error instead.
        follow_redirects=False,
        # Uncompressed bodies, so the byte count we bound is the size we hold in memory.
        headers={"Accept-Encoding": "identity"},
        event_hooks={"response": [_limit_body(settings.max_response_bytes)]},
    )


# The SSRF check resolves the host before a call; the connection resolves it again. These hooks make
# the connection's own resolution the checked one, so a DNS answer that changes in between (DNS
# rebinding) cannot send the call into our network. Only the address lookup is replaced: TLS (SNI,
# certificate) and the Host header still use the URL's host name.


class VettingResolver(aiohttp.ThreadedResolver):
    """aiohttp's default resolver, refusing answers with a non-public address."""

    def __init__(self, *, allow_private: bool):
        super().__init__()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        results = await super().resolve(host, port, family)
        if not self._allow_private:
            check_addresses(host, [result["host"] for result in results])
        return results


class VettingBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's default network backend, connecting to the vetted addresses of the host."""

    def __init__(self, *, allow_private: bool):
        self._inner = httpcore2.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, **options) -> httpcore2.AsyncNetworkStream:
        addresses = await resolve_host(host, port)
        if not self._allow_private:
            check_addresses(host, addresses)
        for address in addresses[:-1]:
            try:
                return await self._inner.connect_tcp(address, port, **options)
            except httpcore2.ConnectError:
                continue  # the next address of the host
        return await self._inner.connect_tcp(addresses[-1], port, **options)

    async def connect_unix_socket(self, path: str, **options) -> httpcore2.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, **options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _aiohttp_transport(sdk: ModuleType, settings: ProviderSettings) -> httpx2.AsyncBaseTransport:
    # The SDK's own copy of httpx-aiohttp: each SDK maps aiohttp's errors onto httpx's its own way.
    vendored = importlib.import_module(f"{sdk.__name__}._vendor.httpx_aiohttp")
    transport = vendored.AiohttpTransport(limits=POOL_LIMITS)

    def session() -> aiohttp.ClientSession:  # called on the first request, in the loop it serves
        connector = aiohttp.TCPConnector(
            limit=POOL_LIMITS.max_connections,
            keepalive_timeout=POOL_LIMITS.keepalive_expiry,
            ssl=transport.ssl_context,
            resolver=VettingResolver(allow_private=settings.allow_private_urls),
        )
        return aiohttp.ClientSession(connector=connector)

    transport.client = session
    return transport


def _httpx_transport(settings: ProviderSettings) -> httpx2.AsyncBaseTransport:
    transport = httpx2.AsyncHTTPTransport(limits=POOL_LIMITS)
    # httpx builds its pool without a way to pass the network backend: the pool is rebuilt with one.
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(),
        max_connections=POOL_LIMITS.max_connections,
        max_keepalive_connections=POOL_LIMITS.max_keepalive_connections,
        keepalive_expiry=POOL_LIMITS.keepalive_expiry,
        network_backend=VettingBackend(allow_private=settings.allow_private_urls),
    )
    return transport


def _limit_body(max_bytes: int):
    async def refuse_large_bodies(response: httpx2.Response) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(f"response of {declared} bytes is over the limit of {max_bytes}")
        response.stream = _BoundedStream(response.stream, max_bytes)

    return refuse_large_bodies


class _BoundedStream(httpx2.AsyncByteStream):
    """Counts the bytes as they arrive and stops at the limit, so nothing is buffered past it."""

    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int):
        self._inner = inner
        self._max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._max_bytes:
                raise ResponseTooLarge(f"response is over the limit of {self._max_bytes} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
