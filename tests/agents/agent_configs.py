"""Agent configs for the execution tests (YAML text, as users write it)."""

from __future__ import annotations

import json


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
