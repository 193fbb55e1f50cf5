"""A fake Anthropic server: POST /v1/messages (JSON and SSE events), GET /v1/models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from providers.llm.schema_sample import sample_for_schema
from tests.fakes.behaviours import Behaviour
from tests.fakes.server import FakeLLMServer, estimate_tokens, sse_frame, words

ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class FakeAnthropicServer(FakeLLMServer):
    """Speaks the Messages wire format; the key goes in `x-api-key` (older SDKs) or a bearer token."""

    def __init__(self, *, models: tuple[str, ...] = ("claude-sonnet-4-5", "claude-haiku-4-5"), **kwargs: Any):
        super().__init__(**kwargs)
        self.models = models

    @property
    def base_url(self) -> str:
        """What the Anthropic SDK takes as its base URL (its paths start with /v1)."""
        return self.url

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.handler(self._messages))
        app.router.add_get("/v1/models", self.handler(self._models))

    def presented_key(self, request: web.Request) -> str:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return request.headers.get("x-api-key", bearer)

    def unauthorized_message(self, presented_key: str) -> str:
        return f"invalid x-api-key: {presented_key}"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}

    async def _models(self, request: web.Request, body: Any, behaviour: Behaviour) -> web.Response:
        data = [
            {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
            for model in self.models
        ]
        return web.json_response({"data": data, "has_more": False, "first_id": None, "last_id": None})

    async def _messages(self, request: web.Request, body: Mapping[str, Any], behaviour: Behaviour):
        blocks = _content_blocks(body, behaviour)
        stop_reason = "tool_use" if any(block["type"] == "tool_use" for block in blocks) else "end_turn"
        usage = _usage(body, blocks, behaviour)
        if body.get("stream"):
            frames = _stream_frames(body, blocks, stop_reason, usage, behaviour)
            return await self.send_events(request, frames, behaviour)
        message = {**_message_envelope(body), "content": blocks, "stop_reason": stop_reason, "usage": usage}
        return web.json_response(message)


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") != "user":
            continue
        content = message.get("content") or ""
        if isinstance(content, str):
            return content
        texts = [block.get("text", "") for block in content if block.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


def _forced_tool(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choice = body.get("tool_choice") or {}
    if choice.get("type") != "tool":
        return None
    return next((tool for tool in body.get("tools", []) if tool["name"] == choice["name"]), None)


def _content_blocks(body: Mapping[str, Any], behaviour: Behaviour) -> list[dict[str, Any]]:
    forced = _forced_tool(body)
    if forced is not None and behaviour.text is None:
        document = behaviour.json or sample_for_schema(forced["input_schema"], _last_user_text(body))
        return [_tool_use(0, forced["name"], document)]
    text = _answer_text(body, behaviour)
    blocks = [{"type": "text", "text": text}] if text else []
    return blocks + [
        _tool_use(index, call["name"], call.get("arguments", {}))
        for index, call in enumerate(behaviour.tool_calls)
    ]


def _answer_text(body: Mapping[str, Any], behaviour: Behaviour) -> str:
    if behaviour.text is not None:
        return behaviour.text
    if behaviour.json is not None:
        return json.dumps(behaviour.json)
    if behaviour.tool_calls:
        return ""
    return f"Echo: {_last_user_text(body)}"


def _tool_use(index: int, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": dict(arguments)}


def _usage(body: Mapping[str, Any], blocks: list[dict[str, Any]], behaviour: Behaviour) -> dict[str, int]:
    return {
        "input_tokens": estimate_tokens(json.dumps(body.get("messages", []))),
        "output_tokens": estimate_tokens(json.dumps(blocks)),
        "cache_read_input_tokens": behaviour.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def _message_envelope(body: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model", "")}


def _stream_frames(
    body, blocks, stop_reason: str, usage: dict[str, int], behaviour: Behaviour
) -> list[bytes]:
    def event(name: str, **data: Any) -> bytes:
        return sse_frame({"type": name, **data}, event=name)

    start_usage = {**usage, "output_tokens": 1}
    opening = {**_message_envelope(body), "content": [], "stop_reason": None, "usage": start_usage}
    frames = [event("message_start", message=opening)]
    for index, block in enumerate(blocks):
        frames += _block_frames(event, index, block, behaviour)
    frames.append(event("message_delta", delta={"stop_reason": stop_reason}, usage=usage))
    frames.append(event("message_stop"))
    return frames


def _block_frames(event, index: int, block: Mapping[str, Any], behaviour: Behaviour) -> list[bytes]:
    if block["type"] == "text":
        frames = [event("content_block_start", index=index, content_block={"type": "text", "text": ""})]
        deltas = [{"type": "text_delta", "text": piece} for piece in behaviour.chunks or words(block["text"])]
    else:
        frames = [event("content_block_start", index=index, content_block={**block, "input": {}})]
        arguments = json.dumps(block["input"])
        half = len(arguments) // 2
        deltas = [
            {"type": "input_json_delta", "partial_json": part}
            for part in (arguments[:half], arguments[half:])
        ]
    frames += [event("content_block_delta", index=index, delta=delta) for delta in deltas]
    frames.append(event("content_block_stop", index=index))
    return frames
