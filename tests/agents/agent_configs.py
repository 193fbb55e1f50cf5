"""Agent configs for tests, in one place: `agent_config` (a valid config as a dict, the base of the
others), `agent_yaml` (its YAML), `team_agent_yaml` (string fields by name, for orchestrations),
`engine_agent_config` (normalized, for the engine tests) and `support_yaml` (YAML text as users
write it, for the execution tests)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from agents.config_schema import validate_agent_config


def agent_config(**sections: Any) -> dict[str, Any]:
    """A small valid config (mock provider, one input, one output); `sections` replace whole
    top-level sections (signature, provider, config, tools)."""
    config = {
        "signature": {
            "system_prompt": "You answer support questions.",
            "inputs": [{"name": "inquiry", "type": "string", "description": "The customer's message"}],
            "outputs": [{"name": "response", "type": "string", "description": "The reply"}],
        },
        "provider": {"provider": "mock", "model": "mock-1"},
        "config": {"temperature": 0.7},
    }
    config.update(copy.deepcopy(sections))
    return config


def agent_yaml(document: dict[str, Any] | None = None, **sections: Any) -> str:
    """YAML text of `document`, or of `agent_config(**sections)`."""
    return yaml.safe_dump(document if document is not None else agent_config(**sections), sort_keys=False)


def field(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "description": f"The {name}", **extra}


def team_agent_yaml(
    *,
    inputs: Sequence[str] = ("text",),
    outputs: Sequence[str] = ("answer",),
    responses: Sequence[Mapping[str, Any]] | None = None,
    latency_ms: int | None = None,
    provider: str = "mock",
    model: str = "mock-1",
    system_prompt: str = "You are a careful assistant.",
    **config: Any,
) -> str:
    """YAML of an agent with string inputs and outputs of the given names, on the mock provider (a
    script of `responses`, `latency_ms`) or another provider; `config` adds keys of `config:`."""
    provider_section: dict[str, Any] = {"provider": provider, "model": model}
    if responses is not None:
        provider_section["responses"] = [dict(item) for item in responses]
    if latency_ms is not None:
        provider_section["latency_ms"] = latency_ms
    return agent_yaml(
        signature={
            "system_prompt": system_prompt,
            "inputs": [field(name) for name in inputs],
            "outputs": [field(name) for name in outputs],
        },
        provider=provider_section,
        config={"strategy": "single_shot", "timeout_s": 20, "max_retries": 0, **config},
    )


def engine_agent_config(
    *,
    inputs: Sequence[Mapping[str, Any]] = ({"name": "question", "type": "string"},),
    outputs: Sequence[Mapping[str, Any]] = ({"name": "answer", "type": "string"},),
    system_prompt: str = "You answer questions.",
    tools: Sequence[Mapping[str, Any]] = (),
    provider: Mapping[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """A normalized version-1 config, built through the real validator."""
    return validate_agent_config(
        agent_config(
            signature={"system_prompt": system_prompt, "inputs": list(inputs), "outputs": list(outputs)},
            provider=dict(provider or {"provider": "openai", "model": "gpt-4o-mini"}),
            config=settings,
            tools=list(tools),
        )
    )


def support_yaml(
    *,
    provider="mock",
    model="mock-1",
    responses=None,
    extra_provider="",
    config_extra="",
    strategy="single_shot",
    tools="",
) -> str:
    lines = [
        "signature:",
        '  system_prompt: "You are a support agent."',
        "  inputs: [{name: inquiry, type: string, description: The customer question}]",
        "  outputs:",
        "    - {name: response, type: string}",
        "    - {name: priority, type: enum, enum_values: [low, high]}",
        "provider:",
        f"  provider: {provider}",
        f"  model: {model}",
    ]
    if responses is not None:
        lines.append(f"  responses: {json.dumps(responses)}")
    if extra_provider:
        lines.append(extra_provider)
    lines += ["config:", f"  strategy: {strategy}", "  timeout_s: 20", "  max_retries: 0"]
    if config_extra:
        lines.append(config_extra)
    if tools:
        lines.append(tools)
    return "\n".join(lines) + "\n"
