"""Plain data at the boundary of the LLM engine slice (no Django here).

Every adapter takes a `CompletionRequest` and returns a `Completion` (or streams `Delta`s followed
by one final `Completion`). Errors are `LLMError` subclasses carrying the API error code and HTTP
status the rest of the product reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from studio.errors import CodedError

PROVIDER_KINDS = ("openai", "anthropic", "azure_openai", "ollama", "openai_compatible", "mock")


@dataclass(frozen=True)
class ToolSpec:
    """A function offered to the model (native tool calling)."""

    name: str
    description: str
    parameters: Mapping[str, Any]  # JSON Schema of the arguments object


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant | tool
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # for role == "tool": which call this answers


@dataclass(frozen=True)
class CompletionRequest:
    messages: tuple[Message, ...]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    json_schema: Mapping[str, Any] | None = None  # ask for JSON matching this schema
    schema_name: str = "output"
    tools: tuple[ToolSpec, ...] = ()
    timeout_s: float = 60.0  # total deadline of the call, retries included
    max_retries: int = 2
    # Index of this call within one agent execution. The mock provider answers its scripted
    # responses by turn, which keeps it stateless and deterministic.
    turn: int = 0
    # Per-call options from the agent config's `provider` section (mock: responses, latency_ms).
    provider_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    usage: Usage
    finish_reason: str = "stop"
    parsed: Any = None  # the decoded JSON when a json_schema was requested and the text parsed
    tool_calls: tuple[ToolCall, ...] = ()
    latency_ms: float = 0.0
    cost_usd: Decimal = Decimal(0)  # filled in by the gateway from the pricing table
    warnings: tuple[str, ...] = ()  # e.g. "unknown model priced at 0"


@dataclass(frozen=True)
class Delta:
    """A piece of streamed text."""

    text: str


@dataclass(frozen=True)
class ProviderSettings:
    """What an adapter needs to reach one provider account. `api_key` is the decrypted secret:
    never log it, never put it in an error message."""

    kind: str
    api_key: str = field(default="", repr=False)  # a settings object in a log or traceback hides it
    base_url: str | None = None
    api_version: str | None = None
    default_model: str | None = None
    allow_private_urls: bool = False
    connect_timeout_s: float = 5.0
    max_response_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class ValidationResult:
    valid: bool
    models: tuple[str, ...] = ()
    latency_ms: float = 0.0
    error: str | None = None
    error_code: str | None = None  # the LLMError code: "invalid_api_key" tells a bad key from an outage


class LLMError(CodedError):
    """A provider failure translated into the product's error vocabulary."""

    code = "provider_error"
    status = 502

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message, retry_after=retry_after)


class InvalidApiKey(LLMError):
    code = "invalid_api_key"
    status = 400


class ProviderRateLimited(LLMError):
    code = "provider_rate_limited"
    status = 429


class ProviderTimeout(LLMError):
    code = "provider_timeout"
    status = 504


class ProviderError(LLMError):
    code = "provider_error"
    status = 502


class BudgetExceeded(LLMError):
    code = "budget_exceeded"
    status = 402


class ProviderNotConfigured(LLMError):
    code = "provider_not_configured"
    status = 400


class UnsafeProviderUrl(LLMError):
    code = "unsafe_provider_url"
    status = 400


class LLMAdapter(Protocol):
    settings: ProviderSettings

    async def complete(self, request: CompletionRequest) -> Completion: ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        """Yields text deltas as the provider sends them, then exactly one final Completion."""
        ...

    async def list_models(self) -> list[str]: ...

    async def validate(self) -> ValidationResult: ...


@dataclass(frozen=True)
class LLMCall:
    """One model call as the runtime asks the gateway for it. The gateway resolves the provider
    config, reserves budget, calls the adapter, prices the answer and records an llm span."""

    request: CompletionRequest
    provider_kind: str
    provider_id: str | None = None  # None: the organization's default active config of that kind
    agent_id: str | None = None
    agent_budget_limit_usd: Decimal | None = None  # monthly cap of the agent, if any
    parent_span_id: str | None = None


class Gateway(Protocol):
    """The only way the engine calls a model (implemented by providers.gateway)."""

    async def complete(self, call: LLMCall) -> Completion: ...

    def stream(self, call: LLMCall) -> AsyncIterator[Delta | Completion]: ...


class Recorder(Protocol):
    """Sink for spans and events of one run (implemented by observability). A sink that subclasses
    it needn't implement `batch`."""

    async def span_open(
        self,
        *,
        kind: str,  # run | pattern | agent | llm | tool
        name: str,
        parent_id: str | None,
        agent_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        key: str | None = None,  # its stable place in the run (pattern steps and agent calls)
    ) -> str: ...

    async def span_close(
        self,
        span_id: str,
        *,
        status: str,  # completed | failed | cancelled
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: Decimal = Decimal(0),
        attributes: Mapping[str, Any] | None = None,
        error: str | None = None,
        output: Mapping[str, Any] | None = None,  # what an agent call answered
    ) -> None: ...

    async def emit(self, type: str, *, agent_id: str | None = None, data: Mapping[str, Any]) -> None: ...

    def batch(self, *, defer: bool = False) -> AbstractAsyncContextManager[None]:
        """Within it, spans and events are stored together when it ends (events published then);
        with `defer`, they may wait for the run's next write and go with it (where the sink allows
        it, see observability.recorder). By default nothing waits: each is stored as it is made,
        which is as correct, only slower."""
        return nullcontext()
