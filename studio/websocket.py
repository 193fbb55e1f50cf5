"""WebSocket plumbing shared by every consumer: JWT authentication and the base consumer."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import APIException

from accounts.authentication import user_for_access_token
from observability import metrics

logger = logging.getLogger(__name__)

# Browsers cannot set headers on a WebSocket: the token travels as `?token=` or as a
# subprotocol pair `["bearer", "<jwt>"]` (the server answers with the `bearer` subprotocol).
BEARER_SUBPROTOCOL = "bearer"


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
def _user_for(token: str):
    try:
        return user_for_access_token(token)
    except APIException:
        return AnonymousUser()


class JWTAuthMiddleware:
    """Puts the user of a valid access token into `scope["user"]` (anonymous otherwise)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        token = _token_from_scope(scope)
        scope = dict(scope, user=await _user_for(token) if token else AnonymousUser())
        return await self.app(scope, receive, send)


class OriginCheck(OriginValidator):
    """Browsers always send Origin: a foreign one is refused. Non-browser clients (CLI, SDKs)
    send none and are let through, since they authenticate with a token anyway."""

    def __init__(self, application):
        super().__init__(application, allowed_origins=settings.ALLOWED_HOSTS)

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or super().valid_origin(parsed_origin)


class StudioConsumer(AsyncJsonWebsocketConsumer):
    """Refuses anonymous connections and answers malformed frames with an error frame."""

    async def connect(self):
        self.user = self.scope["user"]
        if not self.user.is_authenticated or not self.user.organization_id:
            await self.close(code=4401)
            return
        if not await self.authorize():
            await self.close(code=4404)
            return
        subprotocol = (
            BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in (self.scope.get("subprotocols") or []) else None
        )
        await self.accept(subprotocol=subprotocol)
        self.counted = True
        metrics.ws_connected()
        await self.on_connected()

    async def authorize(self) -> bool:
        """Override to check the object of the URL belongs to the user's organization."""
        return True

    async def on_connected(self) -> None:
        """Override to send or subscribe once the connection is accepted."""

    async def disconnect(self, code):
        if getattr(self, "counted", False):
            metrics.ws_disconnected()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            content = json.loads(text_data or "")
        except ValueError:
            await self.send_error("malformed_frame", "Frames must be JSON objects.")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("malformed_frame", "Frames must be JSON objects with a string `type`.")
            return
        await self.receive_json(content)

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "error": {"code": code, "message": message}})
