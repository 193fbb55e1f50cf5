"""Running one agent: span, events, input checks, circuit breaker, deadline, strategy, result."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from agents.runtime.approvals import recorded_turns
from agents.runtime.execution import Execution, completion_dump, completion_load
from agents.runtime.inputs import validate_inputs
from agents.runtime.strategies import STRATEGIES
from agents.runtime.structured import Outcome
from agents.runtime.tool_sources import McpToolCaller
from agents.runtime.types import AgentError, AgentResult, AgentSpec, CircuitBreaker, RunAgent
from providers.llm.types import Gateway, Recorder
from studio.errors import CodedError, WorkPaused, internal_error

# Failures that say nothing about the agent's health, so the circuit breaker does not count them.
_NOT_THE_AGENTS_FAILURE = ("invalid_input", "budget_exceeded", "circuit_open")


async def run_agent(
    spec: AgentSpec,
    inputs: Mapping[str, Any],
    *,
    gateway: Gateway,
    recorder: Recorder,
    breaker: CircuitBreaker | None = None,
    parent_span_id: str | None = None,
    stream: bool = False,
    key: str | None = None,
    mcp: McpToolCaller | None = None,
) -> AgentResult:
    """Runs one agent execution under an `agent` span and returns its output and usage (tool agents
    included); raises AgentError (a CodedError, e.g. an LLMError, keeps its code and status; the
    deadline is provider_timeout; anything else is internal_error, its detail only in the server log;
    `key`, the call's place in its run, is recorded on the span with the output: see `replaying`).
    `mcp` calls the MCP tools of a react agent (and of its tool agents)."""
    started = time.perf_counter()
    async with recorder.batch(defer=True):  # the span and the first event: with the first LLM call
        span_id = await recorder.span_open(
            kind="agent",
            name=spec.name,
            parent_id=parent_span_id,
            agent_id=spec.agent_id,
            key=key,
            attributes={
                "strategy": spec.settings.strategy,
                "provider": spec.settings.provider["provider"],
                "model": spec.settings.provider["model"],
            },
        )
        started_data = {"name": spec.name, "inputs": inputs}
        await recorder.emit("agent.started", agent_id=spec.agent_id, data=started_data)
    timeout_s = spec.settings.timeout_s
    execution = Execution(
        spec,
        span_id=span_id,
        gateway=gateway,
        recorder=recorder,
        run_tool=bind_run_agent(gateway=gateway, recorder=recorder, breaker=breaker, mcp=mcp),
        stream=stream,
        deadline=asyncio.get_running_loop().time() + timeout_s,
        mcp=mcp,
        key=key,
    )
    try:  # every await after the span is opened: a cancel landing on any of them closes it
        if key is not None:
            execution.recorded_turns = [completion_load(turn) for turn in await recorded_turns(recorder, key)]
        outcome = await _execute(execution, inputs, breaker)
    except WorkPaused:
        # Waiting for a person: made again on resume, its turns and finished tool calls replayed.
        turns = {"turns": [completion_dump(turn) for turn in execution.made_turns]}
        await _close(execution, "waiting", output=turns)
        raise
    except asyncio.CancelledError:
        await _close(execution, "cancelled", error="cancelled")
        data = _failure("cancelled", "the agent execution was cancelled")
        await recorder.emit("agent.failed", agent_id=spec.agent_id, data=data)
        raise
    except Exception as exc:
        error = _as_agent_error(exc, timeout_s)
        await _fail(execution, error, breaker)
        if error is exc:
            raise
        raise error from exc
    return await _succeed(execution, outcome, breaker, elapsed_ms=(time.perf_counter() - started) * 1000)


def bind_run_agent(
    *,
    gateway: Gateway,
    recorder: Recorder,
    breaker: CircuitBreaker | None = None,
    stream: bool = False,
    mcp: McpToolCaller | None = None,
) -> RunAgent:
    """`run_agent` with its collaborators bound: the RunAgent callable orchestration patterns take."""

    async def run(
        spec: AgentSpec, inputs: Mapping[str, Any], parent_span_id: str | None, /, *, key: str | None = None
    ) -> AgentResult:
        return await run_agent(
            spec,
            inputs,
            gateway=gateway,
            recorder=recorder,
            breaker=breaker,
            parent_span_id=parent_span_id,
            stream=stream,
            key=key,
            mcp=mcp,
        )

    return run


async def _execute(
    execution: Execution, inputs: Mapping[str, Any], breaker: CircuitBreaker | None
) -> Outcome:
    spec = execution.spec
    valid_inputs = validate_inputs(spec.settings.signature.inputs, inputs)
    if breaker is not None and not await breaker.allow(spec.agent_id):
        message = f"the agent {spec.name!r} failed repeatedly; calls are paused while its circuit is open"
        raise AgentError("circuit_open", message, status=503)
    async with asyncio.timeout_at(execution.deadline):
        return await STRATEGIES[spec.settings.strategy](execution, valid_inputs)


def _as_agent_error(exc: Exception, timeout_s: float) -> AgentError:
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, TimeoutError):
        return AgentError("provider_timeout", f"the agent did not finish within {timeout_s} s", status=504)
    error = exc if isinstance(exc, CodedError) else internal_error(exc, what="The agent")
    return AgentError(error.code, error.message, status=error.status, fields=error.fields)


async def _succeed(
    execution: Execution, outcome: Outcome, breaker: CircuitBreaker | None, *, elapsed_ms: float
) -> AgentResult:
    spec = execution.spec
    attributes = {**outcome.attributes, "turns": execution.turns}
    tokens = {
        "input": execution.input_tokens,
        "output": execution.output_tokens,
        "total": execution.input_tokens + execution.output_tokens,
    }
    data = {
        "output": outcome.output,
        "tokens": tokens,
        "cost_usd": float(execution.cost_usd),
        "execution_time_ms": round(elapsed_ms, 3),
    }
    async with execution.recorder.batch(defer=True):  # the span's close and the last event: one write
        await _close(execution, "completed", attributes=attributes, output=outcome.output)
        await execution.recorder.emit("agent.completed", agent_id=spec.agent_id, data=data)
    if breaker is not None:
        await breaker.record(spec.agent_id, success=True)
    return AgentResult(
        output=outcome.output,
        input_tokens=execution.input_tokens,
        output_tokens=execution.output_tokens,
        cost_usd=execution.cost_usd,
        execution_time_ms=elapsed_ms,
        span_id=execution.span_id,
        attributes=outcome.attributes,
    )


async def _fail(execution: Execution, error: AgentError, breaker: CircuitBreaker | None) -> None:
    agent_id = execution.spec.agent_id
    data = _failure(error.code, error.message)
    async with execution.recorder.batch(defer=True):
        attributes = {"code": error.code, "status": error.status}  # what replaying it raises again
        await _close(execution, "failed", error=error.message, attributes=attributes)
        await execution.recorder.emit("agent.failed", agent_id=agent_id, data=data)
    if breaker is not None and error.code not in _NOT_THE_AGENTS_FAILURE:
        await breaker.record(agent_id, success=False)


async def _close(
    execution: Execution,
    status: str,
    *,
    error: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    output: Mapping[str, Any] | None = None,
) -> None:
    """Closes the agent span with the usage so far: calls made before a failure were still paid for."""
    await execution.recorder.span_close(
        execution.span_id,
        status=status,
        input_tokens=execution.input_tokens,
        output_tokens=execution.output_tokens,
        cost_usd=execution.cost_usd,
        attributes=attributes,
        error=error,
        output=output,
    )


def _failure(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def replaying(run_agent: RunAgent, replay: Mapping[str, AgentResult | AgentError]) -> RunAgent:
    """`run_agent` for a run that resumes: a call whose key `replay` holds (the calls the run's
    earlier executions finished) gets the recorded result, or raises the recorded failure, and
    nothing is called, paid or emitted; any other call is made."""

    async def run(
        spec: AgentSpec, inputs: Mapping[str, Any], parent_span_id: str | None, /, *, key: str | None = None
    ) -> AgentResult:
        recorded = replay.get(key) if key is not None else None
        if recorded is None:
            return await run_agent(spec, inputs, parent_span_id, key=key)
        if isinstance(recorded, AgentError):
            raise recorded
        return recorded

    return run


def call_digest(spec: AgentSpec, inputs: Mapping[str, Any]) -> str:
    """A digest of what an agent call is asked (the agent as configured, its role, its inputs): a
    call key includes it, so a recorded answer is only reused for the same question."""
    text = json.dumps([spec, dict(inputs)], sort_keys=True, default=_plain, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON for what `json` cannot write itself (without `dataclasses.asdict`'s deep copies)."""
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)
