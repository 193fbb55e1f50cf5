"""The agent config YAML: safe loading, the version-1 schema, version bumps."""

from __future__ import annotations

import copy

import pytest

from agents.config_schema import parse_agent_config, validate_agent_config, version_bump
from agents.runtime.validation import ConfigError
from agents.yaml_loader import load_yaml

EXAMPLE = """
signature:
  system_prompt: "You are a support agent."
  inputs:  [{name: inquiry, type: string, description: "The customer's message", required: true}]
  outputs: [{name: response, type: string, description: "The reply"},
            {name: priority, type: enum, enum_values: [low, high]}]
provider:
  provider: openai
  model: gpt-4o-mini
config:
  temperature: 0.2
  strategy: chain_of_thought
"""

PROVIDER_ID = "prov-" + "0123456789abcdef" * 2
AGENT_ID = "agent-" + "f" * 32


def minimal(**sections):
    config = {
        "signature": {
            "system_prompt": "Be brief.",
            "inputs": [{"name": "question", "type": "string"}],
            "outputs": [{"name": "answer", "type": "string"}],
        },
        "provider": {"provider": "openai", "model": "gpt-4o-mini"},
    }
    config.update(sections)
    return config


def errors_of(call, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        call(*args, **kwargs)
    return {error["path"]: error["message"] for error in caught.value.errors}


# --- load_yaml -------------------------------------------------------------------------------


def test_load_yaml_returns_plain_data_and_keeps_timestamps_as_strings():
    assert load_yaml("a: 1\nb: [x, {c: 2.5}]\nwhen: 2024-01-01\nflag: true\n") == {
        "a": 1,
        "b": ["x", {"c": 2.5}],
        "when": "2024-01-01",
        "flag": True,
    }


def test_billion_laughs_is_rejected_at_the_first_anchor_without_expanding_anything():
    lines = ['lol0: &lol0 "lol"']
    lines += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]" for i in range(1, 10)]
    errors = errors_of(load_yaml, "\n".join(lines))
    assert errors == {"lol0": "anchors and aliases are not allowed (found 'lol0' at line 1, column 7)"}


def test_an_alias_alone_is_rejected_where_it_is_used():
    assert "anchors and aliases" in errors_of(load_yaml, "a: [1, *missing]")["a[1]"]


def test_a_one_megabyte_document_is_rejected_by_size_before_parsing():
    document = "a: [" + "1, " * 350_000 + "1]"
    errors = errors_of(load_yaml, document)
    assert errors == {"": f"the document is {len(document)} bytes; the limit is 65536"}


def test_the_size_limit_counts_utf8_bytes_not_characters():
    assert errors_of(load_yaml, "a: " + "é" * 40, max_bytes=64)[""].startswith("the document is 83 bytes")


def test_a_python_object_tag_is_rejected_and_never_constructed():
    errors = errors_of(load_yaml, "signature: !!python/object/apply:os.system ['echo hacked']")
    assert errors["signature"].startswith(
        "tags are not allowed (found 'tag:yaml.org,2002:python/object/apply:os.system'"
    )


@pytest.mark.parametrize(
    "document, path",
    [
        ("a: !!str 1", "a"),
        ("a: !foo bar", "a"),
        ("a: ! bar", "a"),
        ("!!map {a: 1}", ""),
        ("a: [1, !!int 2]", "a[1]"),
    ],
)
def test_every_explicit_tag_is_rejected_with_its_path(document, path):
    assert errors_of(load_yaml, document)[path].startswith("tags are not allowed")


@pytest.mark.parametrize(
    "document, found",
    [("- a\n- b", "an array"), ("just text", "a string"), ("", "null"), ("42", "an integer")],
)
def test_the_top_level_must_be_a_mapping(document, found):
    assert errors_of(load_yaml, document) == {
        "": f"the document must be a mapping of keys to values, got {found}"
    }


def test_nesting_up_to_max_depth_loads_and_one_level_deeper_fails_with_its_path():
    assert load_yaml("a: {b: {c: 1}}", max_depth=3) == {"a": {"b": {"c": 1}}}
    assert errors_of(load_yaml, "a: {b: {c: [1]}}", max_depth=3) == {
        "a.b.c": "nesting is deeper than 3 levels"
    }


def test_pathologically_deep_flow_nesting_fails_fast_without_recursion_errors():
    document = "a: " + "[" * 30_000 + "]" * 30_000
    errors = errors_of(load_yaml, document)
    assert list(errors.values()) == ["nesting is deeper than 20 levels"]


@pytest.mark.parametrize(
    "document, path, key",
    [("1: a", "", "'1'"), ("a: {true: x}", "a", "'true'"), ("a: [{null: x}]", "a[0]", "'null'")],
)
def test_keys_must_be_strings(document, path, key):
    assert errors_of(load_yaml, document) == {path: f"keys must be strings, found {key}"}


def test_quoted_numeric_keys_are_strings():
    assert load_yaml("'1': a") == {"1": "a"}


def test_duplicate_keys_are_rejected_instead_of_silently_overwritten():
    assert errors_of(load_yaml, "a:\n  b: 1\n  b: 2\n") == {"a.b": "duplicate key 'b'"}


def test_merge_keys_are_plain_keys_so_the_schema_can_reject_them():
    assert load_yaml("<<: {a: 1}") == {"<<": {"a": 1}}


def test_syntax_errors_name_the_line_and_column():
    errors = errors_of(load_yaml, "a: 1\nb: [1, 2\n")
    assert errors[""].startswith("invalid YAML at line 3, column 1:")


@pytest.mark.parametrize("character", ["\x00", "\ud800"])
def test_unreadable_characters_are_a_config_error(character):
    assert errors_of(load_yaml, f"a: b{character}")[""].startswith("invalid YAML:")


def test_several_documents_are_a_syntax_error():
    assert "invalid YAML" in errors_of(load_yaml, "a: 1\n---\nb: 2\n")[""]


# --- validate_agent_config -----------------------------------------------------------------


def test_a_minimal_config_gets_every_default():
    assert validate_agent_config(minimal()) == {
        "signature": {
            "system_prompt": "Be brief.",
            "inputs": [{"name": "question", "type": "string", "description": "", "required": True}],
            "outputs": [{"name": "answer", "type": "string", "description": ""}],
        },
        "provider": {"provider": "openai", "model": "gpt-4o-mini", "provider_id": None},
        "config": {
            "temperature": 0.7,
            "max_tokens": 1024,
            "strategy": "single_shot",
            "budget_limit_usd": None,
            "timeout_s": 60,
            "max_retries": 2,
            "max_cycles": 2,
            "max_steps": 5,
        },
        "tools": [],
    }


def test_validation_does_not_modify_its_input():
    config = minimal()
    original = copy.deepcopy(config)
    validate_agent_config(config)
    assert config == original


def test_the_architecture_example_parses():
    config = parse_agent_config(EXAMPLE)
    assert config["signature"]["outputs"][1] == {
        "name": "priority",
        "type": "enum",
        "description": "",
        "enum_values": ["low", "high"],
    }
    assert config["config"]["strategy"] == "chain_of_thought"
    assert config["config"]["temperature"] == 0.2


def test_parse_agent_config_reports_loading_errors():
    assert "anchors" in errors_of(parse_agent_config, "signature: &s {}")["signature"]


def test_every_error_is_reported_at_once_with_its_path():
    config = minimal(config={"temperature": 3, "max_steps": 0})
    config["signature"]["outputs"] = [
        {"name": "answer", "type": "string"},
        {"name": "level", "type": "enum", "enum_values": []},
    ]
    config["provider"]["provider_id"] = "prov-123"
    errors = errors_of(validate_agent_config, config)
    assert errors == {
        "signature.outputs[1].enum_values": "must have between 1 and 100 items, got 0",
        "provider.provider_id": "must be 'prov-' followed by 32 hex characters, got 'prov-123'",
        "config.temperature": "must be at least 0 and at most 2, got 3",
        "config.max_steps": "must be at least 1 and at most 20, got 0",
    }


@pytest.mark.parametrize(
    "config, path, message",
    [
        (
            minimal(config={"temprature": 0.5}),
            "config.temprature",
            "unknown key 'temprature'; did you mean 'temperature'?",
        ),
        (minimal(tool=[]), "tool", "unknown key 'tool'; did you mean 'tools'?"),
        (
            minimal(extra=1),
            "extra",
            "unknown key 'extra'; expected one of: signature, provider, config, tools",
        ),
        (
            minimal(config={"strategy": "chain_of_thougt"}),
            "config.strategy",
            "unknown value 'chain_of_thougt'; did you mean 'chain_of_thought'?",
        ),
        (
            minimal(provider={"provider": "antropic", "model": "claude"}),
            "provider.provider",
            "unknown value 'antropic'; did you mean 'anthropic'?",
        ),
    ],
)
def test_unknown_keys_and_values_suggest_the_closest_known_one(config, path, message):
    assert errors_of(validate_agent_config, config) == {path: message}


def test_field_keys_are_checked_and_required_applies_to_inputs_only():
    config = minimal()
    config["signature"]["inputs"] = [{"name": "q", "type": "string", "descripton": "typo"}]
    config["signature"]["outputs"] = [{"name": "a", "type": "string", "required": False}]
    assert errors_of(validate_agent_config, config) == {
        "signature.inputs[0].descripton": "unknown key 'descripton'; did you mean 'description'?",
        "signature.outputs[0].required": (
            "unknown key 'required'; expected one of: name, type, description, enum_values"
        ),
    }


@pytest.mark.parametrize(
    "missing, path",
    [("signature", "signature"), ("provider", "provider")],
)
def test_signature_and_provider_are_required(missing, path):
    config = minimal()
    del config[missing]
    assert errors_of(validate_agent_config, config) == {path: "is required"}


def test_signature_parts_and_provider_model_are_required():
    config = minimal(signature={}, provider={"provider": "mock"})
    assert errors_of(validate_agent_config, config) == {
        "signature.system_prompt": "is required",
        "signature.inputs": "is required",
        "signature.outputs": "is required",
        "provider.model": "is required",
    }


def test_a_config_that_is_not_a_mapping_is_an_error_at_the_root():
    assert errors_of(validate_agent_config, ["signature"]) == {"": "must be a mapping, got an array"}


@pytest.mark.parametrize(
    "overrides, path, message",
    [
        ({"temperature": -0.1}, "config.temperature", "must be at least 0 and at most 2, got -0.1"),
        ({"temperature": 2.01}, "config.temperature", "must be at least 0 and at most 2, got 2.01"),
        ({"temperature": "hot"}, "config.temperature", "must be a number, got a string"),
        ({"max_tokens": 0}, "config.max_tokens", "must be at least 1 and at most 200000, got 0"),
        ({"max_tokens": 200_001}, "config.max_tokens", "must be at least 1 and at most 200000, got 200001"),
        ({"max_tokens": 100.5}, "config.max_tokens", "must be an integer, got a number"),
        ({"max_tokens": True}, "config.max_tokens", "must be an integer, got a boolean"),
        ({"temperature": True}, "config.temperature", "must be a number, got a boolean"),
        ({"timeout_s": 0}, "config.timeout_s", "must be greater than 0 and at most 600, got 0"),
        ({"timeout_s": 600.5}, "config.timeout_s", "must be greater than 0 and at most 600, got 600.5"),
        ({"max_retries": 6}, "config.max_retries", "must be at least 0 and at most 5, got 6"),
        ({"max_cycles": 0}, "config.max_cycles", "must be at least 1 and at most 5, got 0"),
        ({"max_cycles": 6}, "config.max_cycles", "must be at least 1 and at most 5, got 6"),
        ({"max_steps": 21}, "config.max_steps", "must be at least 1 and at most 20, got 21"),
        ({"budget_limit_usd": -1}, "config.budget_limit_usd", "must be at least 0, got -1"),
        ({"budget_limit_usd": float("inf")}, "config.budget_limit_usd", "must be at least 0, got inf"),
        ({"budget_limit_usd": float("nan")}, "config.budget_limit_usd", "must be at least 0, got nan"),
        (
            {"strategy": 3},
            "config.strategy",
            "must be one of single_shot, chain_of_thought, react, self_reflection, got an integer",
        ),
    ],
)
def test_config_values_are_bounded(overrides, path, message):
    assert errors_of(validate_agent_config, minimal(config=overrides)) == {path: message}


def test_bounds_are_inclusive_where_documented():
    limits = {"temperature": 2, "max_tokens": 200_000, "timeout_s": 600, "max_retries": 0, "max_steps": 20}
    assert validate_agent_config(minimal(config=limits))["config"]["timeout_s"] == 600


def test_optional_keys_accept_null():
    config = minimal(config={"budget_limit_usd": None})
    config["provider"]["provider_id"] = None
    normalized = validate_agent_config(config)
    assert normalized["config"]["budget_limit_usd"] is None
    assert normalized["provider"]["provider_id"] is None


def test_a_null_where_a_default_exists_is_an_error():
    assert errors_of(validate_agent_config, minimal(config={"temperature": None})) == {
        "config.temperature": "must be a number, got null"
    }


def test_the_system_prompt_is_capped():
    config = minimal()
    config["signature"]["system_prompt"] = "x" * 20_001
    assert errors_of(validate_agent_config, config) == {
        "signature.system_prompt": "must be at most 20000 characters, got 20001"
    }


@pytest.mark.parametrize(
    "field, path, message",
    [
        ({"name": "level", "type": "enum"}, "enum_values", "is required for an enum field"),
        (
            {"name": "level", "type": "string", "enum_values": ["a"]},
            "enum_values",
            "is only allowed on an enum field",
        ),
        (
            {"name": "level", "type": "enum", "enum_values": ["a", "a"]},
            "enum_values",
            "must not repeat a value",
        ),
        (
            {"name": "level", "type": "enum", "enum_values": ["a", 1]},
            "enum_values[1]",
            "must be a string, got an integer",
        ),
        ({"name": "level", "type": "integer"}, "type", "unknown value 'integer'; did you mean 'int'?"),
        (
            {"name": "2nd", "type": "string"},
            "name",
            "must be a Python identifier of at most 64 characters, got '2nd'",
        ),
        (
            {"name": "class", "type": "string"},
            "name",
            "must be a Python identifier of at most 64 characters, got 'class'",
        ),
        (
            {"name": "my-field", "type": "string"},
            "name",
            "must be a Python identifier of at most 64 characters, got 'my-field'",
        ),
        ({"type": "string"}, "name", "is required"),
        ({"name": "level"}, "type", "is required"),
        (
            {"name": "level", "type": "string", "description": 5},
            "description",
            "must be a string, got an integer",
        ),
    ],
)
def test_field_rules(field, path, message):
    config = minimal()
    config["signature"]["outputs"] = [{"name": "answer", "type": "string"}, field]
    assert errors_of(validate_agent_config, config) == {f"signature.outputs[1].{path}": message}


@pytest.mark.parametrize("kind", ["string", "int", "float", "bool", "array", "object"])
def test_every_field_type_is_accepted(kind):
    config = minimal()
    config["signature"]["inputs"] = [{"name": "value", "type": kind, "required": False}]
    assert validate_agent_config(config)["signature"]["inputs"][0]["required"] is False


def test_field_names_are_unique_within_inputs_and_within_outputs():
    config = minimal()
    config["signature"]["inputs"] = [{"name": "text", "type": "string"}, {"name": "text", "type": "int"}]
    config["signature"]["outputs"] = [{"name": "text", "type": "string"}, {"name": "text", "type": "string"}]
    assert errors_of(validate_agent_config, config) == {
        "signature.inputs[1].name": "duplicate input name 'text'",
        "signature.outputs[1].name": "duplicate output name 'text'",
    }


def test_at_least_one_output_is_required():
    config = minimal()
    config["signature"]["outputs"] = []
    assert errors_of(validate_agent_config, config) == {
        "signature.outputs": "must have between 1 and 50 items, got 0"
    }


def test_an_agent_may_have_no_inputs():
    config = minimal()
    config["signature"]["inputs"] = []
    assert validate_agent_config(config)["signature"]["inputs"] == []


def test_reasoning_is_reserved_for_chain_of_thought():
    config = minimal(config={"strategy": "chain_of_thought"})
    config["signature"]["outputs"] = [{"name": "reasoning", "type": "string"}]
    assert errors_of(validate_agent_config, config) == {
        "signature.outputs[0].name": "'reasoning' is reserved by the chain_of_thought strategy"
    }


def test_mock_only_provider_keys():
    mock = minimal(
        provider={"provider": "mock", "model": "mock-1", "responses": [{"response": "hi"}], "latency_ms": 5}
    )
    assert validate_agent_config(mock)["provider"] == {
        "provider": "mock",
        "model": "mock-1",
        "provider_id": None,
        "responses": [{"response": "hi"}],
        "latency_ms": 5,
    }
    openai = minimal(provider={"provider": "openai", "model": "gpt", "responses": [], "latency_ms": 5})
    assert errors_of(validate_agent_config, openai) == {
        "provider.responses": "is only allowed with the mock provider",
        "provider.latency_ms": "is only allowed with the mock provider",
    }


def test_mock_responses_and_latency_are_checked():
    config = minimal(provider={"provider": "mock", "model": "m", "responses": ["hi"], "latency_ms": 60_001})
    assert errors_of(validate_agent_config, config) == {
        "provider.responses[0]": "must be a mapping such as {response: ...}, got a string",
        "provider.latency_ms": "must be at least 0 and at most 60000, got 60001",
    }


def test_provider_exists_is_asked_with_the_kind_and_id():
    asked = []

    def provider_exists(kind, provider_id):
        asked.append((kind, provider_id))
        return False

    config = minimal(provider={"provider": "anthropic", "model": "claude", "provider_id": PROVIDER_ID})
    errors = errors_of(validate_agent_config, config, provider_exists=provider_exists)
    assert asked == [("anthropic", PROVIDER_ID)]
    assert errors == {"provider.provider_id": f"no anthropic provider '{PROVIDER_ID}' in this organization"}
    assert validate_agent_config(config, provider_exists=lambda kind, pid: True)["provider"]["provider_id"]


def test_provider_exists_is_not_asked_without_a_provider_id():
    def provider_exists(kind, provider_id):
        raise AssertionError("not expected")

    assert validate_agent_config(minimal(), provider_exists=provider_exists)


def test_tools_belong_to_react_agents_and_name_agents():
    react = minimal(
        config={"strategy": "react"}, tools=[{"agent_id": AGENT_ID, "description": "Looks up orders"}]
    )
    assert validate_agent_config(react)["tools"] == [{"agent_id": AGENT_ID, "description": "Looks up orders"}]
    single = minimal(tools=[{"agent_id": AGENT_ID}])
    assert errors_of(validate_agent_config, single) == {
        "tools": "tools are only used by the react strategy (config.strategy: react)"
    }
    bad = minimal(
        config={"strategy": "react"},
        tools=[{"agent_id": "agent-1"}, {"agent_id": AGENT_ID}, {"agent_id": AGENT_ID}],
    )
    assert errors_of(validate_agent_config, bad) == {
        "tools[0].agent_id": "must be 'agent-' followed by 32 hex characters, got 'agent-1'",
        "tools[2].agent_id": f"duplicate tool '{AGENT_ID}'",
    }


def test_a_tool_without_description_gets_null():
    config = minimal(config={"strategy": "react"}, tools=[{"agent_id": AGENT_ID}])
    assert validate_agent_config(config)["tools"] == [{"agent_id": AGENT_ID, "description": None}]


# --- version_bump ----------------------------------------------------------------------------


def changed(change):
    config = validate_agent_config(
        minimal(
            signature={
                "system_prompt": "Be brief.",
                "inputs": [{"name": "question", "type": "string"}],
                "outputs": [
                    {"name": "answer", "type": "string"},
                    {"name": "level", "type": "enum", "enum_values": ["low", "high"]},
                ],
            }
        )
    )
    new = copy.deepcopy(config)
    change(new)
    return config, new


@pytest.mark.parametrize(
    "change, bump",
    [
        (lambda c: c["signature"].update(system_prompt="Be verbose."), "patch"),
        (lambda c: c["signature"]["outputs"][0].update(description="The answer"), "patch"),
        (lambda c: c["signature"]["outputs"].reverse(), "patch"),
        (lambda c: c["signature"]["outputs"][1]["enum_values"].reverse(), "patch"),
        (lambda c: c["config"].update(temperature=0.1, strategy="react"), "patch"),
        (lambda c: c["provider"].update(model="gpt-4o"), "patch"),
        (lambda c: c["signature"]["inputs"][0].update(name="query"), "minor"),
        (lambda c: c["signature"]["inputs"][0].update(required=False), "minor"),
        (
            lambda c: c["signature"]["inputs"].append({"name": "lang", "type": "string", "required": False}),
            "minor",
        ),
        (lambda c: c["signature"]["outputs"].pop(), "minor"),
        (lambda c: c["signature"]["outputs"][0].update(type="object"), "minor"),
        (lambda c: c["signature"]["outputs"][1]["enum_values"].append("urgent"), "minor"),
    ],
)
def test_version_bump_is_minor_only_when_the_signature_interface_changes(change, bump):
    old, new = changed(change)
    assert version_bump(old, new) == bump


def test_field_names_may_not_start_with_an_underscore():
    document = {
        "signature": {
            "system_prompt": "Answer.",
            "inputs": [{"name": "__init__", "type": "string"}],
            "outputs": [{"name": "x", "type": "string"}],
        },
        "provider": {"provider": "mock", "model": "mock-1"},
    }
    with pytest.raises(ConfigError) as error:
        validate_agent_config(document)
    assert error.value.errors == [
        {"path": "signature.inputs[0].name", "message": "must not start with an underscore, got '__init__'"}
    ]
