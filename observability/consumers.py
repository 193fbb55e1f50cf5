"""WebSocket consumers that follow runs: replay stored events after a `seq`, then forward live ones
from the run's channel-layer group (deduplicated by `seq`). When the channel layer is down, they
fall back to reading new events from the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async

from observability.events import FINAL_EVENTS, run_group
from observability.models import Run, RunEvent
from observability.recorder import event_frame
from observability.supervisor import run_cancel
from studio.background import spawn
from studio.errors import CodedError, internal_error
from studio.websocket import StudioConsumer

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5


class RunFollowingConsumer(StudioConsumer):
    """Base of every consumer that streams a run's events to its client."""

    following: str | None = None
    last_seq = 0
    close_after_final = False
    _poller: asyncio.Task | None = None

    async def follow(self, run_id: str, *, after_seq: int = 0, replay: bool = True) -> None:
        await self.unfollow()
        self.following, self.last_seq = run_id, after_seq
        try:
            await self.channel_layer.group_add(run_group(run_id), self.channel_name)
        except Exception:
            logger.warning("Channel layer unavailable; following %s from the database", run_id, exc_info=True)
            # Background work of the socket: its own connections, and its failure logged.
            self._poller = spawn(self._poll, run_id, name=f"event poller of {run_id}")
            return
        if replay:
            await self._send_stored(run_id)
            if self.close_after_final and await self._finished(run_id):
                await self.close()

    async def unfollow(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self.following is not None:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(run_group(self.following), self.channel_name)
            self.following = None

    async def run_event(self, message: dict[str, Any]) -> None:
        """A live event from the run's group."""
        event = message["event"]
        if event["run_id"] == self.following:
            await self._forward(event)

    async def _forward(self, event: dict[str, Any]) -> None:
        if event["seq"] <= self.last_seq:
            return  # already sent (replay and live overlap)
        self.last_seq = event["seq"]
        await self.send_json(event)
        if event["type"] in FINAL_EVENTS:
            await self.on_run_finished(event)

    async def on_run_finished(self, event: dict[str, Any]) -> None:
        if self.close_after_final:
            await self.close()

    async def _send_stored(self, run_id: str) -> None:
        async for event in RunEvent.objects.filter(run_id=run_id, seq__gt=self.last_seq).order_by("seq"):
            await self._forward(event_frame(event))

    async def _finished(self, run_id: str) -> bool:
        return await Run.objects.filter(pk=run_id, status__in=Run.FINISHED).aexists()

    async def _poll(self, run_id: str) -> None:
        while True:
            await self._send_stored(run_id)
            if await self._finished(run_id):
                await self._send_stored(run_id)
                return
            await asyncio.sleep(POLL_INTERVAL_S)

    async def disconnect(self, code):
        await self.unfollow()
        await super().disconnect(code)


class RunStreamConsumer(RunFollowingConsumer):
    """`/api/runs/{run_id}/stream?after_seq=N`: replay, then follow live; closes when the run ends."""

    close_after_final = True

    async def authorize(self) -> bool:
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        return await Run.objects.filter(pk=run_id, organization_id=self.user.organization_id).aexists()

    async def on_connected(self) -> None:
        await self.follow(self.scope["url_route"]["kwargs"]["run_id"], after_seq=self._after_seq())

    def _after_seq(self) -> int:
        raw = parse_qs(self.scope.get("query_string", b"").decode()).get("after_seq", ["0"])[0]
        return int(raw) if raw.isdigit() else 0

    async def receive_json(self, content, **kwargs):
        await self.send_error("unknown_type", "This stream only sends events.")


class ExecutionConsumer(RunFollowingConsumer):
    """Base of `/api/agents/{id}/stream` and `/api/orchestrations/{id}/stream`: the client sends
    `{"type": "execute", "input": {...}}` and receives the run's events through `run.completed` /
    `run.failed`; `{"type": "cancel"}` cancels it. Leaving does not stop the run."""

    current_run: Run | None = None

    async def receive_json(self, content, **kwargs):
        if content["type"] not in ("execute", "cancel"):
            await self.send_error("unknown_type", f"Unknown frame type '{content['type']}'.")
            return
        if not await self.still_allowed("member"):  # access is re-checked on every action
            return
        if content["type"] == "execute":
            await self._execute(content.get("input", {}))
        else:
            await self._cancel()

    async def _execute(self, inputs: Any) -> None:
        if self.current_run is not None:
            await self.send_error("run_in_progress", "Wait for the current run to finish or cancel it.")
            return
        try:
            run = await self.start_run(inputs)
        except CodedError as refused:  # e.g. invalid_input, too_many_active_runs
            await self.send_failure(refused)
        except Exception as exc:  # a fault: the client learns only an error id, the log the rest
            await self.send_failure(internal_error(exc, what="Starting the run"))
        else:
            # The run may have begun before it is followed: what it emitted meanwhile is replayed.
            self.current_run = run
            await self.follow(run.pk)

    async def _cancel(self) -> None:
        if self.current_run is None:
            await self.send_error("no_run", "There is no run to cancel.")
            return
        await sync_to_async(run_cancel)(self.current_run)

    async def start_run(self, inputs: Any) -> Run:
        """Validates the inputs and starts the run in the background (`run_start`); returns it."""
        raise NotImplementedError

    async def on_run_finished(self, event: dict[str, Any]) -> None:
        self.current_run = None
