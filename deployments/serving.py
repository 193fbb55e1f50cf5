"""The HTTP channel of deployments (also what the CLI calls): plain async Django views.

    GET  /workflows/{name}                          inputs and outputs as JSON Schema
    POST /workflows/{name}/execute                  {"inputs": {...}} -> outputs, ids, usage
    POST /workflows/{name}/execute?async=1          202 {run_id, ...}: the run goes on in the background
    GET  /workflows/{name}/runs/{run_id}            a run of this deployment: status, outputs, usage
    GET  /workflows/{name}/runs/{run_id}/events     its events as server-sent events (replay, then follow)

Every request carries a key of the deployment (`Authorization: Bearer <key>` or `X-API-Key`). A
call waits for its run on the event loop: no thread is held while the model answers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from deployments.calls import (
    DeploymentRefused,
    call_finished,
    call_result,
    deployment_admit_and_begin_async,
    deployment_admit_async,
    deployment_call_start,
)
from deployments.keys import key_prefix
from deployments.models import Deployment
from deployments.pinning import pinned_of
from deployments.selectors import deployment_api_url, deployment_mcp_url
from observability.events import FINAL_EVENTS, run_group
from observability.models import Run, RunEvent
from observability.recorder import event_frame
from observability.supervisor import RunFailed, RunWaiting
from studio.api.errors import error_body, error_envelope
from studio.errors import CodedError

logger = logging.getLogger(__name__)

CHANNEL_HEADER = "X-Studio-Channel"  # `cli` from our CLI; anything else is the api channel
EVENT_POLL_S = 0.2
KEEPALIVE_S = 15.0
EVENTS_PER_POLL = 500
STREAMS_FULL_RETRY_S = 5
DEPLOYMENT_CHALLENGE = 'Bearer realm="deployment"'  # a 401's WWW-Authenticate, on HTTP and MCP

# Event streams open per deployment key in this server process (each holds a task and a channel of
# the layer; counted here, no crash can leak a slot).
_open_streams: Counter[str] = Counter()


def presented_key(headers) -> str | None:
    """The deployment key of a request: `Authorization: Bearer <key>`, else `X-API-Key`."""
    authorization = headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("X-API-Key", "").strip() or None


def error_response(error: CodedError) -> JsonResponse:
    """The error envelope of a refused call or a failed run, with Retry-After / WWW-Authenticate."""
    status, body, headers = error_envelope(error, challenge=DEPLOYMENT_CHALLENGE)
    return JsonResponse(body, status=status, headers=headers)


def _bad_request(code: str, message: str) -> DeploymentRefused:
    return DeploymentRefused(400, code, message)


def _method_not_allowed(allowed: str) -> JsonResponse:
    response = JsonResponse(error_body("method_not_allowed", "Method not allowed."), status=405)
    response["Allow"] = allowed
    return response


def _channel(request) -> str:
    return "cli" if request.headers.get(CHANNEL_HEADER, "").lower() == "cli" else "api"


def _call_inputs(request) -> Any:
    try:
        body = json.loads(request.body or b"{}")
    except RequestDataTooBig:
        raise DeploymentRefused(413, "payload_too_large", "The request body is too large.") from None
    except ValueError:
        raise _bad_request("malformed_request", "The body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs", {}), dict):
        raise DeploymentRefused(
            400,
            "validation_error",
            'The body must be {"inputs": {...}}.',
            fields={"inputs": ["Must be a JSON object."]},
        )
    return body.get("inputs", {})


async def _admit(request, name: str) -> Deployment:
    return await deployment_admit_async(
        name=name, key=presented_key(request.headers), channel=_channel(request)
    )


@csrf_exempt
async def workflow_describe(request, name: str):
    """What the deployment takes and returns, for callers (any key of the deployment)."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET")
    try:
        deployment = await _admit(request, name)
    except DeploymentRefused as refused:
        return error_response(refused)
    pinned = pinned_of(deployment)
    return JsonResponse(
        {
            "name": deployment.name,
            "title": pinned.title,
            "description": pinned.description,
            "kind": deployment.target_kind,
            "version": deployment.pinned_version,
            "input_schema": pinned.input_schema,
            "output_schema": pinned.output_schema,
            "api_url": deployment_api_url(deployment),
            "mcp_url": deployment_mcp_url(deployment),
            "rate_limit_per_minute": deployment.rate_limit_per_minute,
        }
    )


@csrf_exempt
async def workflow_execute(request, name: str):
    """One call: 200 with the outputs once the run completed, or with `?async=1` a 202 right away
    (follow it at `events_url`). Errors in the standard envelope: 400 inputs, 401 key, 404 unknown or
    stopped, 429 rate limit (Retry-After), 503 rate limiter down, 402 budget, 502/504 provider."""
    if request.method != "POST":
        return _method_not_allowed("POST")
    channel = _channel(request)
    background = request.GET.get("async") in ("1", "true")
    try:
        inputs = _call_inputs(request)
        deployment, draft = await deployment_admit_and_begin_async(
            name=name, key=presented_key(request.headers), channel=channel, inputs=inputs
        )
        # In the background the run is recorded to the end even when nobody follows it; either way
        # the call is counted when the run ends.
        run = await deployment_call_start(
            deployment,
            draft,
            stream=background,
            background=background,
            on_finished=functools.partial(call_finished, channel),
        )
    except DeploymentRefused as refused:
        call_finished(channel, refused)
        return error_response(refused)
    except RunFailed as failed:
        return error_response(failed)
    except RunWaiting as waiting:  # for a person's approval: the run goes on once decided
        runs_url = f"/workflows/{deployment.name}/runs/{waiting.run.pk}"
        body = {**waiting.summary(follow_url=f"{runs_url}/events"), "run_url": runs_url}
        return JsonResponse(body, status=202)
    if background:
        runs_url = f"/workflows/{deployment.name}/runs/{run.pk}"
        return JsonResponse(
            {
                "run_id": run.pk,
                "trace_id": run.trace_id,
                "status": run.status,
                "run_url": runs_url,
                "events_url": f"{runs_url}/events",
            },
            status=202,
        )
    return JsonResponse(call_result(run))


async def _deployment_run_of(request, name: str, run_id: str) -> tuple[Deployment, Run]:
    deployment = await _admit(request, name)
    run = await Run.objects.filter(pk=run_id, deployment_id=deployment.pk).afirst()
    if run is None:
        raise DeploymentRefused(404, "not_found", "Run not found.")
    return deployment, run


@csrf_exempt
async def workflow_run(request, name: str, run_id: str):
    """A run of this deployment: its status, and its outputs and usage once it completed."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET")
    try:
        _, run = await _deployment_run_of(request, name, run_id)
    except DeploymentRefused as refused:
        return error_response(refused)
    return JsonResponse(
        {
            **call_result(run),
            "status": run.status,
            "error": run.error,
            "created_at": run.created_at.isoformat(),
            "completed_at": run.completed_at.isoformat() if run.completed_at else None,
            "execution_time_ms": run.execution_time_ms,
        }
    )


@csrf_exempt
async def workflow_run_events(request, name: str, run_id: str):
    """The run's events as server-sent events: those stored after `?after_seq=N` (0: all), then new
    ones as they are stored, until `run.completed` or `run.failed`. Each event's `id` is its seq, so
    a client that lost the stream resumes with `after_seq`."""
    if request.method != "GET":
        return _method_not_allowed("GET")
    try:
        after_seq = int(request.GET.get("after_seq") or 0)
    except ValueError:
        return error_response(_bad_request("validation_error", "after_seq must be a whole number."))
    try:
        deployment, run = await _deployment_run_of(request, name, run_id)
        slot = _StreamSlot.take(f"{deployment.pk}:{key_prefix(presented_key(request.headers))}")
    except DeploymentRefused as refused:
        return error_response(refused)
    stream = _event_stream(run.pk, after_seq, slot)
    weakref.finalize(stream, slot.release)  # a stream dropped before its first byte never runs its finally
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class _StreamSlot:
    """One of a key's open event streams, released once: when the stream ends, or is dropped."""

    def __init__(self, holder: str):
        self.holder: str | None = holder
        _open_streams[holder] += 1

    @classmethod
    def take(cls, holder: str) -> _StreamSlot:
        limit = settings.MAX_EVENT_STREAMS_PER_KEY
        if _open_streams[holder] >= limit:
            raise DeploymentRefused(
                429,
                "too_many_streams",
                f"At most {limit} event streams per deployment key at once; close one first.",
                retry_after=STREAMS_FULL_RETRY_S,
            )
        return cls(holder)

    def release(self) -> None:
        holder, self.holder = self.holder, None
        if holder is not None:
            _open_streams[holder] -= 1
            if _open_streams[holder] <= 0:
                del _open_streams[holder]


async def _event_stream(run_id: str, after_seq: int, slot: _StreamSlot) -> AsyncIterator[bytes]:
    """The run's events after `after_seq`: replayed from the database, then followed live through
    the run's channel-layer group (any server process may be executing it). Without a channel
    layer, the database is polled."""
    layer = get_channel_layer()
    try:
        channel = await _joined(layer, run_id)
        if channel is None:
            async for chunk in _polled_events(run_id, after_seq):
                yield chunk
            return
        try:
            async for chunk in _followed_events(layer, channel, run_id, after_seq):
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                await layer.group_discard(run_group(run_id), channel)
    finally:
        slot.release()


async def _joined(layer, run_id: str) -> str | None:
    """A new channel in the run's group, or None when there is no layer or it is down."""
    if layer is None:
        return None
    try:
        channel = await layer.new_channel()
        await layer.group_add(run_group(run_id), channel)
    except Exception:
        logger.warning("Channel layer unavailable; streaming %s from the database", run_id, exc_info=True)
        return None
    return channel


async def _followed_events(layer, channel: str, run_id: str, after_seq: int) -> AsyncIterator[bytes]:
    """Joined before replaying, so nothing published meanwhile is missed (overlap is skipped by
    seq). A live event that skips a seq, or a quiet keepalive period, sends it back to the database
    to catch up: publishing is best effort, storing is not."""
    while True:
        async for frame in _stored_frames(run_id, after_seq):
            after_seq = frame["seq"]
            yield _sse(frame)
            if frame["type"] in FINAL_EVENTS:
                return
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=KEEPALIVE_S)
            except TimeoutError:
                if await _finished_without_final_event(run_id, after_seq):
                    return
                yield b": keepalive\n\n"
                break
            frame = message.get("event") or {}
            if frame.get("run_id") != run_id or frame["seq"] <= after_seq:
                continue
            if frame["seq"] > after_seq + 1:
                break
            after_seq = frame["seq"]
            yield _sse(frame)
            if frame["type"] in FINAL_EVENTS:
                return


async def _stored_frames(run_id: str, after_seq: int) -> AsyncIterator[dict[str, Any]]:
    while True:
        query = RunEvent.objects.filter(run_id=run_id, seq__gt=after_seq).order_by("seq")
        events = [event async for event in query[:EVENTS_PER_POLL]]
        for event in events:
            after_seq = event.seq
            yield event_frame(event)
        if len(events) < EVENTS_PER_POLL:
            return


def _sse(frame: dict[str, Any]) -> bytes:
    return f"id: {frame['seq']}\nevent: {frame['type']}\ndata: {json.dumps(frame)}\n\n".encode()


async def _polled_events(run_id: str, after_seq: int) -> AsyncIterator[bytes]:
    """Polls the stored events: the fallback while the channel layer is unavailable."""
    last_write = time.monotonic()
    idle_polls = 0
    while True:
        sent = False
        async for frame in _stored_frames(run_id, after_seq):
            after_seq, sent = frame["seq"], True
            yield _sse(frame)
            if frame["type"] in FINAL_EVENTS:
                return
        if sent:
            last_write, idle_polls = time.monotonic(), 0
            continue
        idle_polls += 1
        if idle_polls % 25 == 0 and await _finished_without_final_event(run_id, after_seq):
            return
        if time.monotonic() - last_write >= KEEPALIVE_S:
            last_write = time.monotonic()
            yield b": keepalive\n\n"
        await asyncio.sleep(EVENT_POLL_S)


async def _finished_without_final_event(run_id: str, after_seq: int) -> bool:
    run = await Run.objects.filter(pk=run_id).only("status").afirst()
    if run is None:
        return True
    if run.status not in Run.FINISHED:
        return False
    return not await RunEvent.objects.filter(run_id=run_id, seq__gt=after_seq).aexists()
