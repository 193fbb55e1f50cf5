"""Running orchestrations as recorded runs: each agent through the agent runtime and the gateway,
concurrently wherever the pattern allows (REST execute and WebSocket streams share this)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from agents.models import Agent
from agents.runs import agent_spec, run_agent_of, run_summary
from agents.runtime.inputs import validate_inputs
from agents.runtime.types import AgentSpec
from observability.models import Run
from observability.supervisor import Finished, RunDraft, RunOutcome, run_start
from orchestrations.models import Orchestration
from orchestrations.patterns import PatternContext, pattern_input_fields, run_pattern
from orchestrations.patterns.base import OrchestrationError
from providers.aio import run_sync


def orchestration_specs(orchestration: Orchestration) -> tuple[AgentSpec, ...]:
    """The orchestration's agents as the runtime sees them, in the orchestration's order."""
    # Only the orchestration's own organization: a stored id of another's agent is as good as missing.
    own = Agent.objects.filter(organization_id=orchestration.organization_id)
    agents = own.in_bulk(orchestration.agent_ids)
    missing = [agent_id for agent_id in orchestration.agent_ids if agent_id not in agents]
    if missing:
        raise OrchestrationError(
            "agent_missing",
            f"Agents of this orchestration no longer exist: {', '.join(missing)}.",
            status=409,
        )
    return tuple(agent_spec(agents[agent_id]) for agent_id in orchestration.agent_ids)


@dataclass(frozen=True)
class OrchestrationSpec:
    """An orchestration as its runs see it: its pattern and config over its agents, in order."""

    name: str
    description: str
    pattern: str
    config: Mapping[str, Any]
    agents: tuple[AgentSpec, ...]

    @property
    def input_fields(self) -> list[Mapping[str, Any]]:
        """Its input fields: its first agent's, or others, as its pattern says."""
        return pattern_input_fields(self.pattern, self.agents, self.config)


def orchestration_spec(orchestration: Orchestration) -> OrchestrationSpec:
    """The saved orchestration as its runs see it (409 `agent_missing` when an agent is gone)."""
    return OrchestrationSpec(
        name=orchestration.name,
        description=orchestration.description,
        pattern=orchestration.pattern,
        config=orchestration.config,
        agents=orchestration_specs(orchestration),
    )


def orchestration_inputs_check(spec: OrchestrationSpec, inputs: Any) -> dict[str, Any]:
    """The inputs conformed to the orchestration's input fields: REST, WebSocket, deployments and
    MCP all check them here, before any run exists; AgentError("invalid_input", 400) names each
    problem. Other fields pass on to the pattern."""
    return validate_inputs(spec.input_fields, inputs, allow_unknown=True)


def orchestration_work(spec: OrchestrationSpec, inputs: Mapping[str, Any], *, stream: bool = False):
    """The work of a run that executes the orchestration's pattern (see `orchestration_run_start`)."""

    async def work(recorder, root_span_id) -> RunOutcome:
        context = PatternContext(
            agents=spec.agents,
            config=spec.config,
            inputs=inputs,
            run_agent=run_agent_of(recorder, stream=stream),
            recorder=recorder,
            parent_span_id=root_span_id,
        )
        result = await run_pattern(spec.pattern, context)
        return RunOutcome(
            output=result.output,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost_usd,
            extra={"agents_executed": result.agents_executed},
        )

    return work


async def orchestration_run_start(
    draft: RunDraft,
    spec: OrchestrationSpec,
    *,
    name: str | None = None,
    stream: bool = False,
    background: bool = False,
    on_finished: Finished | None = None,
) -> tuple[Run, RunOutcome | None]:
    """Starts a run of the orchestration on the draft's (checked) inputs, through `run_start`:
    studio executes and deployment calls alike. `name` names the root span (default: the
    orchestration's name)."""
    work = orchestration_work(spec, draft.input, stream=stream)
    return await run_start(
        draft, work, name=name or spec.name, background=background, on_finished=on_finished, stream=stream
    )


def orchestration_draft(
    *, user, orchestration: Orchestration, inputs: Any
) -> tuple[RunDraft, OrchestrationSpec]:
    """The run of a saved orchestration and its spec; its inputs are checked first (400 before
    any run exists)."""
    spec = orchestration_spec(orchestration)
    draft = RunDraft(
        organization_id=orchestration.organization_id,
        user_id=getattr(user, "pk", None),
        kind=Run.Kind.ORCHESTRATION,
        input=orchestration_inputs_check(spec, inputs),
        orchestration_id=orchestration.pk,
    )
    return draft, spec


async def orchestration_start(
    *, user, orchestration: Orchestration, inputs: Any, stream: bool = False, background: bool = False
) -> tuple[Run, RunOutcome | None]:
    """A run of a saved orchestration (REST execute, WebSocket stream): see `orchestration_run_start`."""
    draft, spec = await sync_to_async(orchestration_draft)(
        user=user, orchestration=orchestration, inputs=inputs
    )
    return await orchestration_run_start(draft, spec, stream=stream, background=background)


def orchestration_execute(*, user, orchestration: Orchestration, inputs: Any) -> dict[str, Any]:
    """`POST /api/orchestrations/{id}/execute`: one recorded run of the orchestration."""
    run, outcome = run_sync(orchestration_start, user=user, orchestration=orchestration, inputs=inputs)
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
