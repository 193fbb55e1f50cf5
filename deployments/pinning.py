"""The config a deployment serves, pinned as JSON when it is deployed or redeployed, and everything a
call needs from it: the runtime's AgentSpecs, the input and output JSON Schemas, the input check and
the work of a run. Calls never read the live agent or orchestration."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agents.execution import agent_spec, agent_work
from agents.models import Agent
from agents.runtime.inputs import validate_inputs
from agents.runtime.schema import signature_json_schema
from agents.runtime.types import AgentSpec
from orchestrations.execution import orchestration_inputs_check, orchestration_specs, orchestration_work
from orchestrations.models import Orchestration
from orchestrations.patterns import pattern_input_fields

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


def pinned_title(pinned: Mapping[str, Any]) -> str:
    return pinned["agent"]["name"] if pinned["kind"] == AGENT else pinned["name"]


def pinned_description(pinned: Mapping[str, Any]) -> str:
    return (pinned["agent"] if pinned["kind"] == AGENT else pinned).get("description") or ""


def _input_fields(pinned: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """The agent's input fields, or the orchestration's (its first agent's, as its pattern says)."""
    if pinned["kind"] == AGENT:
        return pinned["agent"]["config"]["signature"]["inputs"]
    return pattern_input_fields(pinned["pattern"], _orchestration_specs(pinned), pinned["config"])


def pinned_input_schema(pinned: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema of a call's inputs: the agent's or orchestration's input fields. An orchestration
    passes any other field on to its agents (mappings such as `input.audience`)."""
    schema = signature_json_schema(_input_fields(pinned))
    if pinned["kind"] == ORCHESTRATION:
        schema["additionalProperties"] = True
    return schema


def pinned_output_schema(pinned: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema of a call's outputs: the agent's output fields; an orchestration's output is an
    object whose shape depends on its pattern."""
    if pinned["kind"] == AGENT:
        return signature_json_schema(pinned["agent"]["config"]["signature"]["outputs"])
    return {"type": "object", "description": f"The output of the {pinned['pattern']} pattern."}


def pinned_inputs_check(pinned: Mapping[str, Any], inputs: Any) -> dict[str, Any]:
    """The inputs conformed to the input schema; AgentError("invalid_input", 400) naming each problem."""
    if pinned["kind"] == AGENT:
        return validate_inputs(_input_fields(pinned), inputs)
    return orchestration_inputs_check(
        pinned["pattern"], _orchestration_specs(pinned), pinned["config"], inputs
    )


def pinned_work(pinned: Mapping[str, Any], inputs: Mapping[str, Any], *, stream: bool = False):
    """The work of a run executing the pinned agent or orchestration (for `run_execute`)."""
    if pinned["kind"] == AGENT:
        return agent_work(spec_from_snapshot(pinned["agent"]), inputs, stream=stream)
    return orchestration_work(
        pinned["pattern"], _orchestration_specs(pinned), pinned["config"], inputs, stream=stream
    )


def _orchestration_specs(pinned: Mapping[str, Any]) -> tuple[AgentSpec, ...]:
    return tuple(spec_from_snapshot(spec) for spec in pinned["agents"])
