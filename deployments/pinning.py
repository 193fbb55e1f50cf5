"""The config a deployment serves, pinned as JSON when it is deployed or redeployed, and everything a
call needs from it: the runtime's AgentSpecs, the input and output JSON Schemas, the input check and
the start of a run, typed once per deployment (`pinned_of`). Calls never read the live agent or
orchestration."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.models import Agent
from agents.runs import agent_run_start, agent_spec
from agents.runtime.inputs import validate_inputs
from agents.runtime.schema import signature_json_schema
from agents.runtime.types import AgentSpec
from deployments.models import Deployment
from observability.models import Run
from observability.supervisor import Finished, RunDraft, RunOutcome
from orchestrations.models import Orchestration
from orchestrations.runs import (
    OrchestrationSpec,
    orchestration_inputs_check,
    orchestration_run_start,
    orchestration_specs,
)

AGENT = "agent"
ORCHESTRATION = "orchestration"


def spec_snapshot(spec: AgentSpec) -> dict[str, Any]:
    """An AgentSpec as JSON (its react tools nested)."""
    return {
        "agent_id": spec.agent_id,
        "name": spec.name,
        "description": spec.description,
        "config": json.loads(json.dumps(spec.config)),
        "tools": [spec_snapshot(tool) for tool in spec.tools],
    }


def spec_from_snapshot(data: Mapping[str, Any]) -> AgentSpec:
    return AgentSpec(
        agent_id=data["agent_id"],
        name=data["name"],
        description=data.get("description", ""),
        config=data["config"],
        tools=tuple(spec_from_snapshot(tool) for tool in data.get("tools") or ()),
    )


def pin_agent(agent: Agent) -> tuple[dict[str, Any], str]:
    """The snapshot of an agent as it is now, and the version to show for it."""
    return {"kind": AGENT, "agent": spec_snapshot(agent_spec(agent))}, agent.version


def pin_orchestration(orchestration: Orchestration) -> tuple[dict[str, Any], str]:
    """The snapshot of an orchestration and its agents as they are now (409 `agent_missing` when an
    agent is gone). Orchestrations have no version number: the shown version is a digest of the
    snapshot, so it changes exactly when a redeploy changes what callers get."""
    pinned = {
        "kind": ORCHESTRATION,
        "name": orchestration.name,
        "description": orchestration.description,
        "pattern": orchestration.pattern,
        "config": json.loads(json.dumps(orchestration.config)),
        "agents": [spec_snapshot(spec) for spec in orchestration_specs(orchestration)],
    }
    digest = hashlib.sha256(json.dumps(pinned, sort_keys=True).encode()).hexdigest()[:12]
    return pinned, f"cfg-{digest}"


# --- reading a snapshot --------------------------------------------------------------------------


@dataclass(frozen=True)
class PinnedAgent:
    """The snapshot of a deployed agent."""

    agent: AgentSpec

    @property
    def title(self) -> str:
        return self.agent.name

    @property
    def description(self) -> str:
        return self.agent.description or ""

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of a call's inputs: the agent's input fields."""
        return signature_json_schema(self.agent.settings.signature.inputs)

    @property
    def output_schema(self) -> dict[str, Any]:
        """JSON Schema of a call's outputs: the agent's output fields."""
        return signature_json_schema(self.agent.settings.signature.outputs)

    def inputs_check(self, inputs: Any) -> dict[str, Any]:
        """The inputs conformed to the input schema; AgentError("invalid_input", 400) naming each problem."""
        return validate_inputs(self.agent.settings.signature.inputs, inputs)

    async def run_start(
        self,
        draft: RunDraft,
        *,
        name: str,
        stream: bool = False,
        background: bool = False,
        on_finished: Finished | None = None,
    ) -> tuple[Run, RunOutcome | None]:
        """Starts a run of the pinned agent (see `agent_run_start`)."""
        return await agent_run_start(
            draft, self.agent, name=name, stream=stream, background=background, on_finished=on_finished
        )


@dataclass(frozen=True)
class PinnedOrchestration:
    """The snapshot of a deployed orchestration and its agents."""

    orchestration: OrchestrationSpec

    @property
    def title(self) -> str:
        return self.orchestration.name

    @property
    def description(self) -> str:
        return self.orchestration.description or ""

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of a call's inputs: the orchestration's input fields (its first agent's, as
        its pattern says). Any other field passes on to its agents (mappings such as
        `input.audience`)."""
        return {**signature_json_schema(self.orchestration.input_fields), "additionalProperties": True}

    @property
    def output_schema(self) -> dict[str, Any]:
        """An orchestration's output is an object whose shape depends on its pattern."""
        return {"type": "object", "description": f"The output of the {self.orchestration.pattern} pattern."}

    def inputs_check(self, inputs: Any) -> dict[str, Any]:
        """The inputs conformed to the input schema; AgentError("invalid_input", 400) naming each problem."""
        return orchestration_inputs_check(self.orchestration, inputs)

    async def run_start(
        self,
        draft: RunDraft,
        *,
        name: str,
        stream: bool = False,
        background: bool = False,
        on_finished: Finished | None = None,
    ) -> tuple[Run, RunOutcome | None]:
        """Starts a run of the pinned orchestration (see `orchestration_run_start`)."""
        return await orchestration_run_start(
            draft,
            self.orchestration,
            name=name,
            stream=stream,
            background=background,
            on_finished=on_finished,
        )


Pinned = PinnedAgent | PinnedOrchestration


def pinned_load(pinned: Mapping[str, Any]) -> Pinned:
    """The typed snapshot of a `Deployment.pinned` JSON (as `pin_agent` / `pin_orchestration` made it)."""
    if pinned["kind"] == AGENT:
        return PinnedAgent(spec_from_snapshot(pinned["agent"]))
    return PinnedOrchestration(
        OrchestrationSpec(
            name=pinned["name"],
            description=pinned.get("description") or "",
            pattern=pinned["pattern"],
            config=pinned["config"],
            agents=tuple(spec_from_snapshot(spec) for spec in pinned["agents"]),
        )
    )


def pinned_of(deployment: Deployment) -> Pinned:
    """The deployment's typed snapshot, loaded once per instance (again if `pinned` is replaced,
    as a redeploy does)."""
    loaded = deployment.__dict__.get("_pinned_loaded")
    if loaded is None or loaded[0] is not deployment.pinned:
        loaded = (deployment.pinned, pinned_load(deployment.pinned))
        deployment.__dict__["_pinned_loaded"] = loaded
    return loaded[1]
