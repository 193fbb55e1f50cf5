"""MCP servers as tool sources, on the Django side: their URL rules and auth headers, the official
`mcp` client over streamable HTTP with our limits, and `StudioMcpCaller`, the engine's
`McpToolCaller` for one organization's runs.

The URL follows the rules of provider base URLs (providers.llm.urlsafety: https to public addresses
only unless STUDIO_ALLOW_PRIVATE_PROVIDER_URLS; no userinfo, query or fragment), checked at save and
again at connection time by the network backend, which connects only to vetted addresses (DNS
rebinding). Redirects are never followed. Every session has a connect timeout
(STUDIO_MCP_CONNECT_TIMEOUT_S) and a total deadline (STUDIO_MCP_CALL_TIMEOUT_S), and a response
body is cut at a size bound derived from STUDIO_MCP_MAX_RESULT_BYTES, the most text a result may
hand the model. Auth headers are sent only to the origin of the URL they were given with."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpcore
import httpx
from django.conf import settings
from mcp import ClientSession, McpError, types
from mcp.client.streamable_http import streamable_http_client

from agents.models import McpServer
from agents.runtime.tool_sources import McpToolError, McpToolInfo, McpToolOutput
from providers.crypto import decrypt_secret, encrypt_secret, key_hint
from providers.llm.types import LLMError, UnsafeProviderUrl
from providers.llm.urlsafety import (
    check_addresses,
    check_base_url_sync,
    check_no_credentials,
    resolve_host,
    url_origin,
)
from studio.audit import REDACTED, redact

# Room for the JSON-RPC envelope and the structured copy of a result beside its text.
_ENVELOPE_FACTOR = 2
_ENVELOPE_BYTES = 16 * 1024


@dataclass(frozen=True)
class McpLimits:
    connect_timeout_s: float
    call_timeout_s: float
    max_result_bytes: int

    @property
    def max_body_bytes(self) -> int:
        return self.max_result_bytes * _ENVELOPE_FACTOR + _ENVELOPE_BYTES


def mcp_limits() -> McpLimits:
    return McpLimits(
        connect_timeout_s=settings.MCP_CONNECT_TIMEOUT_S,
        call_timeout_s=settings.MCP_CALL_TIMEOUT_S,
        max_result_bytes=settings.MCP_MAX_RESULT_BYTES,
    )


# --- URL and headers -----------------------------------------------------------------------------


def mcp_url_problem(url: str) -> str | None:
    """Why `url` may not be an MCP server's URL (the provider URL rules), or None."""
    try:
        check_base_url_sync(url, allow_private=settings.ALLOW_PRIVATE_PROVIDER_URLS)
        check_no_credentials(url)
    except LLMError as error:  # unsafe, or a host that does not resolve and so cannot be vetted
        return error.message.replace("provider URL", "MCP server URL").replace("provider host", "host")
    return None


def headers_sealed(headers: Mapping[str, str]) -> tuple[str, list[dict[str, str]]]:
    """Auth headers as stored: encrypted JSON, and the hint reads show (names, last 4 characters)."""
    if not headers:
        return "", []
    hint = [{"name": name, "hint": key_hint(value)} for name, value in headers.items()]
    return encrypt_secret(json.dumps(dict(headers))), hint


def server_headers(server: McpServer) -> dict[str, str]:
    """The decrypted auth headers, or none once the URL points at another origin than they were
    given for (changed around the API): they are not sent there."""
    if not server.headers_encrypted or url_origin(server.url) != server.headers_origin:
        return {}
    return json.loads(decrypt_secret(server.headers_encrypted))


# --- the client ----------------------------------------------------------------------------------


class _VettingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend connecting only to the vetted addresses of the host (the MCP
    client's httpx; providers.llm.transport.VettingBackend is the providers' httpx2 twin)."""

    def __init__(self, *, allow_private: bool):
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, **options) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve_host(host, port)
        except LLMError as error:
            raise httpcore.ConnectError(error.message) from None
        if not self._allow_private:
            check_addresses(host, addresses)
        for address in addresses[:-1]:
            try:
                return await self._inner.connect_tcp(address, port, **options)
            except httpcore.ConnectError:
                continue
        return await self._inner.connect_tcp(addresses[-1], port, **options)

    async def connect_unix_socket(self, path: str, **options) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("MCP servers are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ResultTooLarge(Exception):
    pass


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int):
        self._inner, self._max_bytes = inner, max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._max_bytes:
                raise _ResultTooLarge(f"the MCP server's answer is over {self._max_bytes} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _bounded(max_bytes: int):
    async def hook(response: httpx.Response) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _ResultTooLarge(f"the MCP server's answer is over {max_bytes} bytes")
        response.stream = _BoundedStream(response.stream, max_bytes)

    return hook


@functools.cache
def _ssl_context():
    # Loading the CA bundle costs tens of milliseconds: once per process, not once per call.
    return httpx.create_ssl_context()


def _http_client(headers: Mapping[str, str], limits: McpLimits) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(verify=_ssl_context())
    # httpx builds its pool without a way to pass the network backend: rebuilt with one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=_ssl_context(),
        network_backend=_VettingBackend(allow_private=settings.ALLOW_PRIVATE_PROVIDER_URLS),
    )
    return httpx.AsyncClient(
        transport=transport,
        headers={**headers, "Accept-Encoding": "identity"},  # the bytes we bound are what we hold
        timeout=httpx.Timeout(limits.call_timeout_s, connect=limits.connect_timeout_s),
        follow_redirects=False,
        max_redirects=0,  # the MCP client follows same-origin redirects unless this is 0
        trust_env=False,
        event_hooks={"response": [_bounded(limits.max_body_bytes)]},
    )


@contextlib.asynccontextmanager
async def _session(url: str, headers: Mapping[str, str], limits: McpLimits) -> AsyncIterator[ClientSession]:
    """An initialized MCP session to `url`, within the total deadline; failures as McpToolError."""
    try:
        async with asyncio.timeout(limits.call_timeout_s):
            async with (
                _http_client(headers, limits) as http,
                streamable_http_client(url, http_client=http) as (read, write, _),
                ClientSession(
                    read, write, read_timeout_seconds=timedelta(seconds=limits.call_timeout_s)
                ) as session,
            ):
                await session.initialize()
                yield session
    except McpToolError:
        raise
    except (Exception, BaseExceptionGroup) as exc:  # noqa: B036 (the client's task group wraps them)
        _reraise_cancellation(exc)
        raise _as_tool_error(exc, limits) from None


def _reraise_cancellation(exc: BaseException) -> None:
    """A cancellation (the run's deadline, a cancel) wrapped by the client's task group stays one."""
    if isinstance(exc, BaseExceptionGroup):
        cancelled, _ = exc.split(asyncio.CancelledError)
        if cancelled is not None:
            raise asyncio.CancelledError() from exc


def _as_tool_error(exc: BaseException, limits: McpLimits) -> McpToolError:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return McpToolError(
            f"the MCP server did not answer within {limits.call_timeout_s:g} s",
            code="mcp_timeout",
            status=504,
        )
    if isinstance(exc, _ResultTooLarge):
        return McpToolError(str(exc), code="mcp_result_too_large")
    if isinstance(exc, UnsafeProviderUrl):
        return McpToolError(exc.message.replace("provider host", "MCP server host"), code="unsafe_url")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return McpToolError(f"the MCP server answered HTTP {status}", code="mcp_http_error")
    if (
        isinstance(exc, McpError) and exc.error.message == "Session terminated"
    ):  # how the client reports a 404
        return McpToolError(
            "the MCP server answered HTTP 404 (no MCP endpoint at this URL)", code="mcp_http_error"
        )
    if isinstance(exc, McpError):
        return McpToolError(f"the MCP server refused: {exc.error.message}", code="mcp_protocol_error")
    if isinstance(exc, httpx.TransportError | OSError):
        return McpToolError("could not connect to the MCP server", code="mcp_unreachable")
    return McpToolError("the MCP server's answer could not be read", code="mcp_protocol_error")


async def mcp_server_tool_list(server: McpServer, *, limits: McpLimits | None = None) -> list[types.Tool]:
    """Every tool the server lists (the allow-list not applied); raises McpToolError."""
    limits = limits or mcp_limits()
    async with _session(server.url, server_headers(server), limits) as session:
        return await _all_tools(session)


async def _all_tools(session: ClientSession) -> list[types.Tool]:
    tools, cursor = [], None
    for _ in range(100):  # a server paging forever is cut off
        page = await session.list_tools(
            params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
        )
        tools += page.tools
        cursor = page.nextCursor
        if not cursor:
            break
    return tools


async def mcp_server_tool_call(
    server: McpServer, tool: str, arguments: Mapping[str, Any], *, limits: McpLimits | None = None
) -> McpToolOutput:
    """Calls one tool of the server; its result as the text the model reads."""
    limits = limits or mcp_limits()
    async with _session(server.url, server_headers(server), limits) as session:
        try:
            result = await session.call_tool(tool, dict(arguments))
        except (Exception, BaseExceptionGroup) as exc:  # noqa: B036
            _reraise_cancellation(exc)
            raise _as_tool_error(exc, limits) from None
    text = result_text(result)
    if len(text.encode()) > limits.max_result_bytes:
        raise McpToolError(
            f"the tool's result is over {limits.max_result_bytes} bytes", code="mcp_result_too_large"
        )
    return McpToolOutput(text=text, is_error=bool(result.isError))


def result_text(result: types.CallToolResult) -> str:
    """The result's text content (structured content as JSON when there is no text)."""
    parts = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource) and isinstance(
            block.resource, types.TextResourceContents
        ):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{block.type} content not shown]")
    if not parts and result.structuredContent is not None:
        return json.dumps(result.structuredContent, ensure_ascii=False)
    return "\n".join(parts)


# --- the engine's caller -------------------------------------------------------------------------


class StudioMcpCaller:
    """The MCP tools of one organization's servers, for one run of that organization: a server is
    read and listed once per run (its agents and tool agents share the listing); its allow-list is
    applied to listing and calling."""

    def __init__(self, *, organization_id: str, limits: McpLimits | None = None):
        self.organization_id = organization_id
        self.limits = limits or mcp_limits()
        self._servers: dict[str, McpServer | None] = {}
        self._listings: dict[str, list[McpToolInfo]] = {}  # each server listed once per run
        self._secrets: set[str] = set()

    async def _server(self, server_id: str) -> McpServer:
        if server_id not in self._servers:
            self._servers[server_id] = await McpServer.objects.filter(
                organization_id=self.organization_id, pk=server_id
            ).afirst()
            server = self._servers[server_id]
            if server is not None:
                self._secrets |= {value for value in server_headers(server).values() if len(value) >= 4}
        server = self._servers[server_id]
        if server is None:
            raise McpToolError(
                f"no MCP server {server_id!r} in this organization", code="not_found", status=404
            )
        return server

    async def list_tools(self, server_id: str) -> Sequence[McpToolInfo]:
        if server_id not in self._listings:
            server = await self._server(server_id)
            tools = await mcp_server_tool_list(server, limits=self.limits)
            self._listings[server_id] = [
                McpToolInfo(name=tool.name, description=tool.description or "", input_schema=tool.inputSchema)
                for tool in tools
                if server.allows(tool.name)
            ]
        return self._listings[server_id]

    async def call_tool(self, server_id: str, tool: str, arguments: Mapping[str, Any]) -> McpToolOutput:
        server = await self._server(server_id)
        if not server.allows(tool):
            message = f"the MCP server {server.name!r} does not allow the tool {tool!r}"
            raise McpToolError(message, code="tool_not_allowed", status=403)
        return await mcp_server_tool_call(server, tool, arguments, limits=self.limits)

    def redact(self, value: Any) -> Any:
        return _scrub(redact(value) if isinstance(value, Mapping | list | tuple) else value, self._secrets)


def _scrub(value: Any, secrets: set[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, secrets) for item in value]
    return value


def run_mcp_caller(run) -> StudioMcpCaller:
    """The MCP caller of a run's organization."""
    return StudioMcpCaller(organization_id=run.organization_id)
