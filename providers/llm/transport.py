"""The HTTP client under the SDKs: transport, pool, timeouts, no redirects, bounded response bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType

import httpx2

from providers.llm.types import ProviderSettings

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
    """An httpx2 client for `sdk` (the `openai` or `anthropic` module) that never follows redirects
    and refuses bodies larger than the settings allow."""
    factory = sdk.DefaultAioHttpClient if transport == "aiohttp" else sdk.DefaultAsyncHttpxClient
    return factory(
        timeout=httpx2.Timeout(DEFAULT_READ_TIMEOUT_S, connect=settings.connect_timeout_s),
        limits=POOL_LIMITS,
        # A redirect could point a vetted base URL at an internal host: a 3xx is an error instead.
        follow_redirects=False,
        # Uncompressed bodies, so the byte count we bound is the size we hold in memory.
        headers={"Accept-Encoding": "identity"},
        event_hooks={"response": [_limit_body(settings.max_response_bytes)]},
    )


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
