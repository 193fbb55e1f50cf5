"""What a fake LLM server does with the next request it receives.

Queue these on a fake server (`server.enqueue(answer("hi"), status(500))`); each request consumes
one, and an empty queue falls back to the server's default answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Behaviour:
    text: str | None = None  # answer text; None: the default (echo, or a schema instance)
    json: Mapping[str, Any] | None = None  # answer with this JSON document
    tool_calls: tuple[Mapping[str, Any], ...] = ()  # [{"name": ..., "arguments": {...}}]
    chunks: tuple[str, ...] | None = None  # streamed text pieces (default: one per word)
    chunk_delay_s: float = 0.0  # pause between streamed events
    cut_after_frames: int | None = None  # drop the connection after this many streamed events
    cached_tokens: int = 0  # reported as cached input tokens
    status: int = 200
    error_message: str = "scripted failure"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering
    drip: bool = False  # send headers, then one byte every `drip_interval_s`, forever
    drip_interval_s: float = 1.0
    huge_bytes: int = 0  # answer with a body of this many bytes
    declare_length: bool = True  # send Content-Length with the huge body (False: chunked)


def answer(
    text: str, *, chunks: tuple[str, ...] | None = None, chunk_delay_s: float = 0.0, cached_tokens: int = 0
) -> Behaviour:
    """A plain text answer, streamed as `chunks` (one per word by default) `chunk_delay_s` apart."""
    return Behaviour(text=text, chunks=chunks, chunk_delay_s=chunk_delay_s, cached_tokens=cached_tokens)


def json_answer(document: Mapping[str, Any]) -> Behaviour:
    """A structured answer (JSON text, or the forced tool's input for Anthropic)."""
    return Behaviour(json=document)


def tool_calls(*calls: Mapping[str, Any]) -> Behaviour:
    """The model calls these tools: each `{"name": ..., "arguments": {...}}`."""
    return Behaviour(tool_calls=tuple(calls))


def cut_stream(after_frames: int, *, text: str = "one two three four five six") -> Behaviour:
    """A streamed answer whose connection drops after `after_frames` events."""
    return Behaviour(text=text, cut_after_frames=after_frames)


def status(code: int, *, retry_after: float | None = None, message: str = "scripted failure") -> Behaviour:
    """An error response with the provider's error body, e.g. 429 with Retry-After, 500, 401."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Behaviour(status=code, headers=headers, error_message=message)


def delay(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Wait `seconds`, then behave like `then` (the default answer when None)."""
    return replace(then or Behaviour(), delay_s=seconds)


def drip(interval_s: float = 1.0) -> Behaviour:
    """Send a 200 and then one byte every `interval_s` (a second by default), never finishing."""
    return Behaviour(drip=True, drip_interval_s=interval_s)


def huge(size_bytes: int, *, declare_length: bool = True) -> Behaviour:
    """A 200 whose body is `size_bytes` long, with or without Content-Length."""
    return Behaviour(huge_bytes=size_bytes, declare_length=declare_length)


def redirect(location: str, *, code: int = 307) -> Behaviour:
    """A redirect to `location`."""
    return Behaviour(status=code, headers={"Location": location})
