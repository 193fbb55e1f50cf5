"""Plain data at the boundary of the agent runtime (no Django here)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from typing import Any, Protocol

from studio.errors import CodedError


@dataclass(frozen=True)
class Signature:
    system_prompt: str
    inputs: tuple[Mapping[str, Any], ...]
    outputs: tuple[Mapping[str, Any], ...]


_SETTINGS = (
    "temperature",
    "max_tokens",
    "strategy",
    "budget_limit_usd",
    "timeout_s",
    "max_retries",
    "max_cycles",
    "max_steps",
)


@dataclass(frozen=True)
class AgentConfig:
    """A validated version-1 agent config (agents.config_schema) as typed fields: its signature, its
    provider section (kind-specific keys, so a mapping), the settings of its `config` section and
    its react tool entries (`agent_id`, `description`)."""

    signature: Signature
    provider: Mapping[str, Any]
    temperature: float
    max_tokens: int
    strategy: str
    budget_limit_usd: float | None
    timeout_s: float
    max_retries: int
    max_cycles: int
    max_steps: int
    tools: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> AgentConfig:
        """From the normalized dict `validate_agent_config` returns (as stored on an agent)."""
        signature = config["signature"]
        return cls(
            signature=Signature(
                system_prompt=signature["system_prompt"],
                inputs=tuple(signature["inputs"]),
                outputs=tuple(signature["outputs"]),
            ),
            provider=config["provider"],
            tools=tuple(config["tools"]),
            **{name: config["config"][name] for name in _SETTINGS},
        )


@dataclass(frozen=True)
class AgentSpec:
    """A saved agent as the runtime sees it. `config` is the validated version-1 config with every
    default filled in (see agents.config_schema), as stored and pinned; `settings` is the same config
    typed, built on first use; `tools` are the resolved tool agents of a react agent."""

    agent_id: str
    name: str
    description: str
    config: Mapping[str, Any]
    tools: tuple[AgentSpec, ...] = ()
    # Set by orchestration patterns: role instructions appended to the system prompt and extra
    # structured output fields (e.g. the router's `route_to` enum), so decisions are parsed.
    role_instructions: str = ""
    extra_outputs: tuple[Mapping[str, Any], ...] = ()

    @cached_property
    def settings(self) -> AgentConfig:
        return AgentConfig.from_dict(self.config)

    def with_role(self, instructions: str, extra_outputs: Sequence[Mapping[str, Any]] = ()) -> AgentSpec:
        return replace(self, role_instructions=instructions, extra_outputs=tuple(extra_outputs))


@dataclass(frozen=True)
class AgentResult:
    output: Mapping[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    execution_time_ms: float = 0.0
    span_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)  # e.g. chain-of-thought reasoning

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class AgentError(CodedError):
    """An agent execution that failed for a reason the API reports with `code` and `status`."""

    def __init__(
        self, code: str, message: str, *, status: int = 400, fields: Mapping[str, Any] | None = None
    ):
        super().__init__(message, code=code, status=status, fields=fields)


class CircuitBreaker(Protocol):
    """Per-agent breaker: opens after N consecutive failures, half-opens after a cool-down."""

    async def allow(self, agent_id: str) -> bool: ...

    async def record(self, agent_id: str, *, success: bool) -> None: ...


class RunAgent(Protocol):
    """How orchestration patterns run one agent: (spec, inputs, parent_span_id) -> result. `key`
    is the call's stable place in its run (see `PatternRun.call`): a call of a resumed run whose
    key was recorded is answered from the record instead of being made again."""

    def __call__(
        self,
        spec: AgentSpec,
        inputs: Mapping[str, Any],
        parent_span_id: str | None,
        /,
        *,
        key: str | None = None,
    ) -> Awaitable[AgentResult]: ...
