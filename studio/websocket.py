"""WebSocket plumbing shared by every consumer: JWT authentication and the base consumer.

Close codes: 4401 no valid token, the token expired, or the account is no longer active; 4403 the
organization is suspended (or the account has none); 4404 the object of the URL is not (or no
longer) in the caller's organization. Once a socket is open, an error frame says why before it closes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import APIException

from accounts.authentication import access_token_session, active_user
from observability import metrics
from studio.api.errors import error_body, error_envelope
from studio.api.permissions import has_role
from studio.errors import CodedError

logger = logging.getLogger(__name__)

# Browsers cannot set headers on a WebSocket: the token travels as `?token=` or as a
# subprotocol pair `["bearer", "<jwt>"]` (the server answers with the `bearer` subprotocol).
BEARER_SUBPROTOCOL = "bearer"
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429  # the user already holds MAX_WEBSOCKETS_PER_USER sockets here
CLOSE_FRAME_TOO_LARGE = 1009  # RFC 6455 "message too big": a frame over MAX_REQUEST_BODY_BYTES

# Open sockets per user in this server process (what a socket costs, memory and a task, is per
# process; counting here needs no shared store and cannot leak past a crash).
_open_sockets: Counter[str] = Counter()


def _token_from_scope(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode())
    if query.get("token"):
        return query["token"][0]
    protocols = scope.get("subprotocols") or []
    if BEARER_SUBPROTOCOL in protocols:
        index = protocols.index(BEARER_SUBPROTOCOL)
        if index + 1 < len(protocols):
            return protocols[index + 1]
    return None


@database_sync_to_async
def _session_for(token: str | None) -> tuple:
    if not token:
        return AnonymousUser(), None
    try:
        return access_token_session(token)
    except APIException:
        return AnonymousUser(), None


class JWTAuthMiddleware:
    """Puts the user of a valid access token into `scope["user"]` (anonymous otherwise) and the
    token's expiry into `scope["token_expires_at"]`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        user, expires_at = await _session_for(_token_from_scope(scope))
        scope = dict(scope, user=user, token_expires_at=expires_at)
        return await self.app(scope, receive, send)


class OriginCheck(OriginValidator):
    """Browsers always send Origin: a foreign one is refused. Non-browser clients (CLI, SDKs)
    send none and are let through, since they authenticate with a token anyway."""

    def __init__(self, application):
        super().__init__(application, allowed_origins=settings.ALLOWED_HOSTS)

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


class StudioConsumer(AsyncJsonWebsocketConsumer):
    """Refuses anonymous connections, closes when the access token expires, and answers malformed
    frames with an error frame. Consumers call `still_allowed` before acting for the user."""

    _expiry: asyncio.Task | None = None

    async def connect(self):
        self.user = self.scope["user"]
        if not self.user.is_authenticated or not self.user.organization_id:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self.authorize():
            await self.close(code=CLOSE_NOT_FOUND)
            return
        subprotocol = (
            BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in (self.scope.get("subprotocols") or []) else None
        )
        await self.accept(subprotocol=subprotocol)
        if not await self._socket_slot_take():
            return
        self._expiry = asyncio.create_task(self._close_when_token_expires(self.scope["token_expires_at"]))
        self.counted = True
        metrics.ws_connected()
        await self.on_connected()

    async def authorize(self) -> bool:
        """Override to check the object of the URL belongs to the user's organization."""
        return True

    async def on_connected(self) -> None:
        """Override to send or subscribe once the connection is accepted."""

    async def still_allowed(self, role: str) -> bool:
        """Re-reads the user before acting for them, since the socket may have been open for a while:
        a deactivated or removed account, a suspended organization or an object no longer in the
        user's organization closes it; a role below `role` gets an error frame (watching stays
        allowed)."""
        try:
            self.user = await database_sync_to_async(active_user)(self.user.pk)
        except APIException as exc:
            close_code = CLOSE_FORBIDDEN if exc.status_code == 403 else CLOSE_UNAUTHENTICATED
            await self._refuse(close_code, exc.get_codes(), str(exc.detail))
            return False
        if not await self.authorize():
            await self._refuse(CLOSE_NOT_FOUND, "not_found", "This is no longer in your organization.")
            return False
        if not has_role(self.user, role):
            await self.send_error("permission_denied", "Your role does not allow this.")
            return False
        return True

    async def _close_when_token_expires(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self._refuse(CLOSE_UNAUTHENTICATED, "token_expired", "The access token has expired.")

    async def _refuse(self, close_code: int, code: str, message: str) -> None:
        await self.send_error(code, message)
        await self.close(code=close_code)

    async def _socket_slot_take(self) -> bool:
        """Counts this socket against the user's cap; past it, an error frame and close code 4429
        (after accepting, so that browsers see the code)."""
        limit = settings.MAX_WEBSOCKETS_PER_USER
        if _open_sockets[self.user.pk] >= limit:
            await self.send_error("too_many_connections", f"At most {limit} open WebSockets per user.")
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return False
        _open_sockets[self.user.pk] += 1
        self.socket_slot = self.user.pk
        return True

    def _socket_slot_release(self) -> None:
        user_pk = getattr(self, "socket_slot", None)
        if user_pk is not None:
            self.socket_slot = None
            _open_sockets[user_pk] -= 1
            if _open_sockets[user_pk] <= 0:
                del _open_sockets[user_pk]

    async def disconnect(self, code):
        self._socket_slot_release()
        if self._expiry is not None:
            self._expiry.cancel()
        if getattr(self, "counted", False):
            metrics.ws_disconnected()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if await self._frame_refused(text_data, bytes_data):
            return
        try:
            content = json.loads(text_data or "")
        except ValueError:
            await self.send_error("malformed_frame", "Frames must be JSON objects.")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("malformed_frame", "Frames must be JSON objects with a string `type`.")
            return
        await self.receive_json(content)

    async def _frame_refused(self, text_data: str | None, bytes_data: bytes | None) -> bool:
        """A frame over the body limit closes the socket (1009) after an error frame; it is not parsed."""
        limit = settings.MAX_REQUEST_BODY_BYTES
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size <= limit:
            return False
        await self.send_error("payload_too_large", f"Frames may be at most {limit} bytes.")
        await self.close(code=CLOSE_FRAME_TOO_LARGE)
        return True

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", **error_body(code, message)})

    async def send_failure(self, error: CodedError) -> None:
        """An error frame for `error`: the envelope every channel renders (`error_envelope`)."""
        _, body, _ = error_envelope(error)
        await self.send_json({"type": "error", **body})
