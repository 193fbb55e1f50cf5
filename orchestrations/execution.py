"""Running orchestrations as recorded runs: each agent through the agent runtime and the gateway,
concurrently wherever the pattern allows (REST execute and WebSocket streams share this)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.breakers import CacheCircuitBreaker
from agents.execution import agent_spec, run_summary
from agents.models import Agent
from agents.runtime.inputs import validate_inputs
from agents.runtime.runner import bind_run_agent
from agents.runtime.types import AgentError, AgentSpec
from observability.limits import run_admit
from observability.models import Run
from observability.services import RunOutcome, run_execute, run_new
from orchestrations.models import Orchestration
from orchestrations.patterns import PatternContext, pattern_input_fields, run_pattern
from providers.aio import run_sync
from providers.gateway import StudioGateway


def orchestration_specs(orchestration: Orchestration) -> tuple[AgentSpec, ...]:
    """The orchestration's agents as the runtime sees them, in the orchestration's order."""
    # Only the orchestration's own organization: a stored id of another's agent is as good as missing.
    own = Agent.objects.filter(organization_id=orchestration.organization_id)
    agents = own.in_bulk(orchestration.agent_ids)
    missing = [agent_id for agent_id in orchestration.agent_ids if agent_id not in agents]
    if missing:
        raise AgentError(
            "agent_missing",
            f"Agents of this orchestration no longer exist: {', '.join(missing)}.",
            status=409,
        )
    return tuple(agent_spec(agents[agent_id]) for agent_id in orchestration.agent_ids)


def orchestration_inputs_check(
    pattern: str, specs: Sequence[AgentSpec], config: Mapping[str, Any], inputs: Any
) -> dict[str, Any]:
    """The inputs conformed to the orchestration's input fields (its first agent's, as the pattern
    says): REST, WebSocket, deployments and MCP all check them here, before any run exists;
    AgentError("invalid_input", 400) names each problem. Other fields pass on to the pattern."""
    return validate_inputs(pattern_input_fields(pattern, specs, config), inputs, allow_unknown=True)


def orchestration_work(
    pattern: str,
    specs: tuple[AgentSpec, ...],
    config: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    stream: bool = False,
):
    """The work of a run that executes a pattern over `specs` (for `run_execute` / `launch_run`)."""

    async def work(recorder, root_span_id) -> RunOutcome:
        run_agent = bind_run_agent(
            gateway=StudioGateway(run=recorder.run, recorder=recorder),
            recorder=recorder,
            breaker=CacheCircuitBreaker(),
            stream=stream,
        )
        context = PatternContext(
            agents=specs,
            config=config,
            inputs=inputs,
            run_agent=run_agent,
            recorder=recorder,
            parent_span_id=root_span_id,
        )
        result = await run_pattern(pattern, context)
        return RunOutcome(
            output=result.output,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost_usd,
            extra={"agents_executed": result.agents_executed},
        )

    return work


def orchestration_run_new(
    *, orchestration: Orchestration, user, inputs, kind=Run.Kind.ORCHESTRATION, **refs
) -> Run:
    """A run of the orchestration, stored when it starts (see `run_new`)."""
    return run_new(
        organization_id=orchestration.organization_id,
        user_id=getattr(user, "pk", None),
        kind=kind,
        input=inputs,
        orchestration_id=orchestration.pk,
        **refs,
    )


def orchestration_execute(*, user, orchestration: Orchestration, inputs: Any) -> dict[str, Any]:
    """`POST /api/orchestrations/{id}/execute`: one recorded run of the orchestration."""
    specs = orchestration_specs(orchestration)
    inputs = orchestration_inputs_check(orchestration.pattern, specs, orchestration.config, inputs)
    run = run_admit(orchestration_run_new(orchestration=orchestration, user=user, inputs=inputs))
    work = orchestration_work(orchestration.pattern, specs, orchestration.config, inputs)
    run, outcome = run_sync(run_execute, run, work, name=orchestration.name)
    summary = run_summary(run)
    return {
        "output": summary["output"],
        "run_id": run.pk,
        "trace_id": run.trace_id,
        "agents_executed": outcome.extra["agents_executed"],
        "total_cost": summary["cost"],
        "tokens": summary["tokens"],
        "execution_time_ms": run.execution_time_ms,
    }
