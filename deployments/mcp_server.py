"""The MCP channel of deployments: `/mcp/{name}` speaks MCP over streamable HTTP with the official
SDK's low-level server, in stateless mode, so any server process answers any request.

Each HTTP request is admitted before MCP sees it (unknown, stopped or not served on MCP: 404; no
valid key of this deployment as a bearer token: 401). An admitted request is served by an MCP
server made for that deployment, offering one tool named after it: its input schema comes from
the pinned signature, its output schema too (an orchestration's output is any object). A tool call
is a `deployment` run like an HTTP call; it returns the outputs as structured content plus their
JSON as text, and every failure (rate limit, inputs, budget, provider) as a tool error
(`isError`), never as a transport failure. While a call runs, progress notifications keep the
connection alive when the client asked for them (a `progressToken`).

Mounted in front of Django by `studio/asgi.py`: `with_mcp(django_http_app)`."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core import signals
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from deployments.calls import (
    DeploymentRefused,
    call_finished,
    call_result,
    deployment_admit_and_begin_async,
    deployment_admit_async,
    deployment_call_start,
)
from deployments.models import Deployment
from deployments.pinning import pinned_of
from deployments.serving import DEPLOYMENT_CHALLENGE, presented_key
from observability.supervisor import RunFailed, RunWaiting
from studio.api.errors import error_envelope
from studio.errors import CodedError

PATH_PREFIX = "/mcp/"
CHANNEL = "mcp"
PROGRESS_EVERY_S = 5.0


def with_mcp(app):
    """An ASGI app that serves `/mcp/{name}` itself and passes every other request to `app`."""

    async def router(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(PATH_PREFIX):
            await mcp_app(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router


async def mcp_app(scope, receive, send) -> None:
    """The MCP endpoint of every deployment (an ASGI app for paths under `/mcp/`)."""
    name = scope["path"][len(PATH_PREFIX) :].rstrip("/")
    if not name or "/" in name:
        await _error(DeploymentRefused(404, "not_found", "Not found."), scope, receive, send)
        return
    # Like Django's own handler: one worker thread for this request's database work, and the
    # request signals that close stale database connections.
    async with ThreadSensitiveContext():
        await signals.request_started.asend(sender=McpChannel, scope=scope)
        try:
            await _serve(name, scope, receive, send)
        finally:
            await signals.request_finished.asend(sender=McpChannel)


class McpChannel:
    """The sender of the request signals of MCP requests."""


async def _serve(name: str, scope, receive, send) -> None:
    key = presented_key(Headers(scope=scope))
    try:
        deployment = await deployment_admit_async(name=name, key=key, channel=CHANNEL)
    except DeploymentRefused as refused:
        call_finished(CHANNEL, refused)
        await _error(refused, scope, receive, send)
        return
    manager = StreamableHTTPSessionManager(
        app=deployment_mcp_server(deployment, key=key),
        stateless=True,
        security_settings=_transport_security(),
    )
    async with manager.run():
        await manager.handle_request(scope, receive, send)


async def _error(refused: DeploymentRefused, scope, receive, send) -> None:
    status, body, headers = error_envelope(refused, challenge=DEPLOYMENT_CHALLENGE)
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


def _transport_security() -> TransportSecuritySettings:
    """Host and Origin checks (DNS rebinding) with the hosts Django accepts and the public origin."""
    hosts = list(settings.ALLOWED_HOSTS)
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    public = urlsplit(settings.PUBLIC_URL)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[pattern for host in hosts for pattern in (host, f"{host}:*")],
        allowed_origins=[f"{public.scheme}://{public.netloc}", *settings.CSRF_TRUSTED_ORIGINS],
    )


def deployment_tool(deployment: Deployment) -> types.Tool:
    pinned = pinned_of(deployment)
    return types.Tool(
        name=deployment.name,
        title=pinned.title,
        description=pinned.description or f"Runs the {deployment.target_kind} {pinned.title!r}.",
        inputSchema=pinned.input_schema,
        outputSchema=pinned.output_schema,
    )


def deployment_mcp_server(deployment: Deployment, *, key: str | None) -> Server:
    """An MCP server offering the deployment as its one tool (made per request: it holds the
    deployment as admitted, so a redeploy or a stop shows in the next request). A tool call is
    admitted again with the request's `key` and counted, as an HTTP call is."""
    tool = deployment_tool(deployment)
    server = Server(
        f"kaizen-studio/{deployment.name}",
        version=deployment.pinned_version or None,
        instructions=tool.description,
    )

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [tool]

    # Inputs are checked against the pinned signature by the call itself, with field-by-field errors.
    @server.call_tool(validate_input=False)
    async def call_tool(tool_name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        if tool_name != tool.name:
            unknown = DeploymentRefused(404, "unknown_tool", f"This server has one tool, {tool.name!r}.")
            return _tool_error(unknown)
        return await _call(deployment.name, key, arguments, server.request_context)

    return server


async def _call(name: str, key: str | None, arguments: dict[str, Any], context) -> types.CallToolResult:
    try:
        deployment, draft = await deployment_admit_and_begin_async(
            name=name, key=key, channel=CHANNEL, inputs=arguments
        )
        progress = _report_progress(context)
        try:
            # The call is counted when its run ends (`on_finished`).
            run = await deployment_call_start(
                deployment, draft, on_finished=functools.partial(call_finished, CHANNEL)
            )
        finally:
            if progress is not None:
                progress.cancel()
    except DeploymentRefused as refused:
        call_finished(CHANNEL, refused)
        return _tool_error(refused)
    except RunFailed as failed:
        return _tool_error(failed)
    except RunWaiting as waiting:
        return _waiting_result(deployment, waiting)
    result = call_result(run)
    outputs = result["outputs"]
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(outputs, indent=2, ensure_ascii=False))],
        structuredContent=outputs,
        _meta={"run_id": result["run_id"], "trace_id": result["trace_id"], "usage": result["usage"]},
    )


def _waiting_result(deployment: Deployment, waiting: RunWaiting) -> types.CallToolResult:
    """The run waits for a person's approval, so there are no outputs yet: said in the text (and
    in `_meta`), flagged `isError` because a result without them would not match the tool's
    output schema, which clients check. The run goes on once someone decides."""
    summary = waiting.summary(follow_url=f"/workflows/{deployment.name}/runs/{waiting.run.pk}/events")
    text = (
        f"Not finished: the run {waiting.run.pk} is waiting for a person's approval "
        f"({summary['approval_id']}); it goes on once someone decides. {json.dumps(summary)}"
    )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], isError=True, _meta=summary
    )


def _tool_error(error: CodedError) -> types.CallToolResult:
    """The envelope as a tool result (`isError`); with no headers in MCP, Retry-After goes in the body."""
    _, body, headers = error_envelope(error)
    if "Retry-After" in headers:
        body["error"]["retry_after"] = int(headers["Retry-After"])
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(body, ensure_ascii=False))], isError=True
    )


def _report_progress(context) -> asyncio.Task | None:
    """While the call runs, a progress notification every few seconds (elapsed seconds as progress)
    when the client sent a progress token."""
    token = getattr(context.meta, "progressToken", None) if context.meta is not None else None
    if token is None:
        return None

    async def report() -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - started
            try:
                await context.session.send_progress_notification(
                    token,
                    progress=round(elapsed, 1),
                    message=f"running for {elapsed:.0f} s",
                    related_request_id=context.request_id,
                )
            except Exception:  # the client went away: the call itself ends the run
                return

    return asyncio.create_task(report())
