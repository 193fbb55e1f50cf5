"""The typed agent config: built once from the validated dict an agent stores (no Django)."""

from __future__ import annotations

import dataclasses

import pytest

from agents.config_schema import parse_agent_config
from agents.runtime.types import AgentConfig, AgentSpec

CONFIG_YAML = """
signature:
  system_prompt: Answer briefly.
  inputs: [{name: question, type: string}]
  outputs: [{name: answer, type: string}]
provider: {provider: mock, model: mock-1, responses: [{answer: hi}]}
config: {strategy: react, timeout_s: 12, max_steps: 3}
tools: [{agent_id: agent-0123456789abcdef0123456789abcdef, description: Looks things up}]
"""


def test_every_field_comes_from_the_validated_config_with_its_defaults():
    typed = AgentConfig.from_dict(parse_agent_config(CONFIG_YAML))

    assert typed.signature.system_prompt == "Answer briefly."
    assert [field["name"] for field in typed.signature.inputs] == ["question"]
    assert [field["name"] for field in typed.signature.outputs] == ["answer"]
    assert typed.provider["provider"] == "mock" and typed.provider["responses"] == [{"answer": "hi"}]
    assert (typed.strategy, typed.timeout_s, typed.max_steps) == ("react", 12, 3)
    assert (typed.temperature, typed.max_tokens, typed.max_retries, typed.max_cycles) == (0.7, 1024, 2, 2)
    assert typed.budget_limit_usd is None
    assert typed.tools == (
        {"agent_id": "agent-0123456789abcdef0123456789abcdef", "description": "Looks things up"},
    )


def test_it_is_frozen():
    typed = AgentConfig.from_dict(parse_agent_config(CONFIG_YAML))

    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.timeout_s = 600


def test_a_spec_types_its_config_once_and_keeps_the_stored_dict():
    config = parse_agent_config(CONFIG_YAML)
    spec = AgentSpec("agent-1", "Helper", "", config)

    assert spec.settings is spec.settings  # built on first use, then kept
    assert spec.settings == AgentConfig.from_dict(config)
    assert spec.config is config  # what is pinned and exported stays the stored dict
