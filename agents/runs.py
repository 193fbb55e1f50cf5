"""Running saved agents: building the runtime's AgentSpec from the database and executing an agent
as a recorded run (REST test runs and WebSocket streams share this)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async

from agents.breakers import CacheCircuitBreaker
from agents.mcp_tools import run_mcp_caller
from agents.models import Agent
from agents.runtime.inputs import validate_inputs
from agents.runtime.runner import bind_run_agent, call_digest, replaying
from agents.runtime.types import AgentConfig, AgentError, AgentResult, AgentSpec, RunAgent
from observability.models import Run, Span
from observability.supervisor import Finished, RunDraft, RunOutcome, run_start
from providers.aio import run_sync
from providers.gateway import StudioGateway

MAX_TOOL_DEPTH = 3


def agent_spec(agent: Agent, *, depth: int = 0, seen: frozenset[str] = frozenset()) -> AgentSpec:
    """The runtime's view of an agent, with its tool agents resolved within the organization
    (bounded depth; an agent never offers itself or an ancestor). Its MCP tools are named by its
    config (server id and tool) and reached at run time by `run_mcp_caller` of the run."""
    tools: tuple[AgentSpec, ...] = ()
    entries = AgentConfig.from_dict(agent.config).tools
    if entries and depth < MAX_TOOL_DEPTH:
        # MCP entries stay in the config: the run's MCP caller reaches their servers when it runs.
        entries = [entry for entry in entries if "agent_id" in entry]
        wanted = [entry["agent_id"] for entry in entries if entry["agent_id"] not in seen | {agent.pk}]
        found = {a.pk: a for a in Agent.objects.filter(organization_id=agent.organization_id, pk__in=wanted)}
        tools = tuple(
            _with_tool_description(
                agent_spec(found[entry["agent_id"]], depth=depth + 1, seen=seen | {agent.pk}), entry
            )
            for entry in entries
            if entry["agent_id"] in found
        )
    return AgentSpec(
        agent_id=agent.pk, name=agent.name, description=agent.description, config=agent.config, tools=tools
    )


def _with_tool_description(spec: AgentSpec, entry: Mapping[str, Any]) -> AgentSpec:
    return dataclasses.replace(spec, description=entry["description"]) if entry.get("description") else spec


def agent_inputs_check(agent: Agent, inputs: Any) -> dict[str, Any]:
    """The inputs conformed to the signature; AgentError("invalid_input", 400) before any run exists."""
    return validate_inputs(AgentConfig.from_dict(agent.config).signature.inputs, inputs)


def agent_work(spec: AgentSpec, inputs: Mapping[str, Any], *, stream: bool = False):
    """The work of a run that executes one agent (see `agent_run_start`)."""

    async def work(recorder, root_span_id) -> RunOutcome:
        run_agent = run_agent_of(recorder, stream=stream)
        key = f"agent:{call_digest(spec, inputs)}"
        result = await run_agent(spec, inputs, root_span_id, key=key)
        return RunOutcome(
            output=result.output,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost_usd,
            extra={"agents_executed": [spec.agent_id]},
        )

    return work


def run_agent_of(recorder, *, stream: bool) -> RunAgent:
    """How the run of `recorder` runs its agents: through the gateway and the circuit breaker, and,
    when the run resumes, answering the calls its earlier executions finished from their record."""
    run_agent = bind_run_agent(
        gateway=StudioGateway(run=recorder.run, recorder=recorder),
        recorder=recorder,
        breaker=CacheCircuitBreaker(),
        stream=stream,
        mcp=run_mcp_caller(recorder.run),
    )
    if recorder.history is None:
        return run_agent
    return replaying(run_agent, {key: recorded_call(span) for key, span in recorder.history.calls.items()})


def recorded_call(span: Span) -> AgentResult | AgentError:
    """A finished agent call's span as the runtime returned it: its result, or the error it raised."""
    if span.status != "completed":
        status = span.attributes.get("status", 502)
        return AgentError(span.attributes.get("code", "agent_failed"), span.error, status=status)
    return AgentResult(
        output=span.output or {},
        input_tokens=span.input_tokens,
        output_tokens=span.output_tokens,
        cost_usd=span.cost_usd,
        execution_time_ms=float(span.duration_ms or 0),
        span_id=span.pk,
    )


async def agent_run_start(
    draft: RunDraft,
    spec: AgentSpec,
    *,
    name: str | None = None,
    stream: bool = False,
    background: bool = False,
    on_finished: Finished | None = None,
) -> tuple[Run, RunOutcome | None]:
    """Starts a run of one agent on the draft's (checked) inputs, through `run_start`: studio test
    runs and deployment calls alike. `name` names the root span (default: the agent's name)."""
    work = agent_work(spec, draft.input, stream=stream)
    return await run_start(
        draft, work, name=name or spec.name, background=background, on_finished=on_finished, stream=stream
    )


def agent_test_draft(*, user, agent: Agent, inputs: Any) -> tuple[RunDraft, AgentSpec]:
    """The `agent_test` run of a saved agent and its spec; its inputs are checked first
    (AgentError("invalid_input", 400) before any run exists)."""
    inputs = agent_inputs_check(agent, inputs)
    draft = RunDraft(
        organization_id=agent.organization_id,
        user_id=getattr(user, "pk", None),
        kind=Run.Kind.AGENT_TEST,
        input=inputs,
        agent_id=agent.pk,
    )
    return draft, agent_spec(agent)


async def agent_test_start(
    *, user, agent: Agent, inputs: Any, stream: bool = False, background: bool = False
) -> tuple[Run, RunOutcome | None]:
    """A test run of a saved agent (REST test, WebSocket stream): see `agent_run_start`."""
    draft, spec = await sync_to_async(agent_test_draft)(user=user, agent=agent, inputs=inputs)
    return await agent_run_start(draft, spec, stream=stream, background=background)


def agent_test_run(*, user, agent: Agent, inputs: Any) -> dict[str, Any]:
    """`POST /api/agents/{id}/test`: runs the agent once as a recorded `agent_test` run and returns
    its output, usage and ids. Invalid inputs fail before a run exists; a failed run raises
    RunFailed (with the run id), e.g. 402 budget_exceeded."""
    run, _ = run_sync(agent_test_start, user=user, agent=agent, inputs=inputs)
    return run_summary(run)


def run_summary(run: Run) -> dict[str, Any]:
    """The response of a synchronous execution."""
    return {
        "output": run.output,
        "tokens": {"input": run.input_tokens, "output": run.output_tokens, "total": run.total_tokens},
        "cost": float(run.cost_usd),
        "run_id": run.pk,
        "trace_id": run.trace_id,
        "execution_time_ms": run.execution_time_ms,
    }
