"""A fake OpenAI-compatible server: POST /v1/chat/completions (JSON and SSE), GET /v1/models.

The same answers are served at Azure OpenAI's paths (`/openai/deployments/{model}/chat/completions`,
`/openai/models`), where the key comes in the `api-key` header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from providers.llm.schema_sample import sample_for_schema
from tests.fakes.behaviours import Behaviour
from tests.fakes.server import FakeLLMServer, estimate_tokens, sse_frame, words

ERROR_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


class FakeOpenAIServer(FakeLLMServer):
    """Speaks the Chat Completions wire format; the key goes in `Authorization: Bearer` (or `api-key`)."""

    def __init__(self, *, models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o"), **kwargs: Any):
        super().__init__(**kwargs)
        self.models = models

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.handler(self._chat))
        app.router.add_get("/v1/models", self.handler(self._models))
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.handler(self._chat))
        app.router.add_get("/openai/models", self.handler(self._models))

    def presented_key(self, request: web.Request) -> str:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return request.headers.get("api-key", bearer)

    def unauthorized_message(self, presented_key: str) -> str:
        # Like the real API, quote the key back: the adapters must keep it out of their errors.
        return f"Incorrect API key provided: {presented_key}. You can find your API key in your account."

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        code = "invalid_api_key" if status == 401 else None
        return {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "code": code}}

    async def _models(self, request: web.Request, body: Any, behaviour: Behaviour) -> web.Response:
        data = [{"id": model, "object": "model", "created": 0, "owned_by": "fake"} for model in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request, body: Mapping[str, Any], behaviour: Behaviour):
        text = _answer_text(body, behaviour)
        calls = [_wire_tool_call(index, call) for index, call in enumerate(behaviour.tool_calls)]
        usage = _usage(body, text, behaviour)
        if body.get("stream"):
            frames = _stream_frames(body, text, calls, usage, behaviour)
            return await self.send_events(request, frames, behaviour)
        message = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        return web.json_response({**_envelope(body, "chat.completion"), "choices": [choice], "usage": usage})


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content") or ""
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content)
            return content
    return ""


def _answer_text(body: Mapping[str, Any], behaviour: Behaviour) -> str:
    if behaviour.text is not None:
        return behaviour.text
    if behaviour.json is not None:
        return json.dumps(behaviour.json)
    if behaviour.tool_calls:
        return ""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema", {})
        return json.dumps(sample_for_schema(schema, _last_user_text(body)))
    return f"Echo: {_last_user_text(body)}"


def _wire_tool_call(index: int, call: Mapping[str, Any]) -> dict[str, Any]:
    arguments = json.dumps(call.get("arguments", {}))
    return {
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": call["name"], "arguments": arguments},
    }


def _usage(body: Mapping[str, Any], text: str, behaviour: Behaviour) -> dict[str, Any]:
    prompt = estimate_tokens(json.dumps(body.get("messages", [])))
    completion = estimate_tokens(text)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": behaviour.cached_tokens},
    }


def _envelope(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": kind, "created": 0, "model": body.get("model", "")}


def _stream_frames(body, text: str, calls: list[dict], usage: dict, behaviour: Behaviour) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return sse_frame({**_envelope(body, "chat.completion.chunk"), "choices": [choice]})

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": piece}) for piece in behaviour.chunks or words(text) if piece]
    for index, call in enumerate(calls):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        opening = {"index": index, "id": call["id"], "type": "function"}
        frames.append(chunk({"tool_calls": [{**opening, "function": {"name": call["function"]["name"]}}]}))
        for part in (arguments[:half], arguments[half:]):
            frames.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
    frames.append(chunk({}, "tool_calls" if calls else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        frames.append(sse_frame({**_envelope(body, "chat.completion.chunk"), "choices": [], "usage": usage}))
    frames.append(sse_frame("[DONE]"))
    return frames
