"""Approvals as the engine sees them (plain Python): what it asks a person, and what it was answered.

A react agent's MCP tool marked `requires_approval`, and an orchestration step marked for approval,
ask `approval_decide` before going on. Each request has a key, its place in the run (the call or
step key, so the same on every execution of the run): the host (`orchestrations.approvals`, bound
to the recorder's run) answers the decision stored under that key, or, while there is none,
raises `studio.errors.WorkPaused`: the run's execution ends there and the decision resumes it
(the replay reaches the same request again, then decided).

The host also keeps the answers of the tool calls a run's earlier executions made
(`recorded_tool`) and the model's answers to the turns of an agent call that paused
(`recorded_turns`): an agent call made again on resume pays for no turn twice and makes no tool
call twice."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from studio.errors import CodedError


@dataclass(frozen=True)
class ApprovalRequest:
    """`kind` tool (subject: the tool and its arguments) or step (subject: the step's output)."""

    key: str
    kind: str
    subject: Mapping[str, Any]
    timeout_s: float | None = None
    on_timeout: str = "reject"  # reject | fail


@dataclass(frozen=True)
class ApprovalDecision:
    """`status` approved, rejected or expired; `comment` the decider's (or why it expired)."""

    approval_id: str
    status: str
    comment: str = ""
    decided_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        return self.status == "approved"


class ApprovalGate(Protocol):
    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        """The decision stored under the request's key; raises WorkPaused while there is none."""
        ...

    async def recorded_tool(self, key: str) -> str | None:
        """What a tool call of an earlier execution of the run answered, if it finished."""
        ...

    async def recorded_turns(self, key: str) -> list[Mapping[str, Any]]:
        """The model's answers to the turns of an agent call that paused (`completion_dump`)."""
        ...


class ApprovalUnavailable(CodedError):
    status = 409
    code = "approval_unavailable"


class ApprovalFailed(CodedError):
    """An approval that expired under the `fail` policy: the run fails with it (not a tool error)."""

    status = 408
    code = "approval_expired"


# Builds the gate of a recorder's run, or None where there is no run (registered by the host).
_gate_factory: list[Callable[[Any], ApprovalGate | None]] = []


def approval_gate_register(factory: Callable[[Any], ApprovalGate | None]) -> None:
    _gate_factory[:] = [factory]


def approval_gate(recorder: Any) -> ApprovalGate | None:
    """The gate of the recorder's run (None: no approvals here, e.g. an engine test's recorder)."""
    return _gate_factory[0](recorder) if _gate_factory else None


async def approval_decide(recorder: Any, request: ApprovalRequest) -> ApprovalDecision:
    """The decision on `request` (see the module doc); ApprovalUnavailable where no gate exists,
    so that nothing that needs a person's approval ever happens without one."""
    gate = approval_gate(recorder)
    if gate is None:
        raise ApprovalUnavailable("this needs a person's approval, and approvals are not available here")
    decision = await gate.decide(request)
    if decision.status == "expired" and decision.extra.get("on_timeout") == "fail":
        message = f"Nobody decided on the approval {decision.approval_id} in time, so the run fails."
        raise ApprovalFailed(message, fields={"approval_id": decision.approval_id})
    return decision


async def recorded_tool(recorder: Any, key: str) -> str | None:
    gate = approval_gate(recorder)
    return None if gate is None else await gate.recorded_tool(key)


async def recorded_turns(recorder: Any, key: str) -> list[Mapping[str, Any]]:
    gate = approval_gate(recorder)
    return [] if gate is None else await gate.recorded_turns(key)
