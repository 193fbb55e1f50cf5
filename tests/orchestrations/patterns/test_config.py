import pytest

from agents.runtime.validation import ConfigError
from orchestrations.patterns import PATTERNS, validate_pattern_config


def errors_of(pattern_id, data, agent_count=3):
    with pytest.raises(ConfigError) as failure:
        validate_pattern_config(pattern_id, data, agent_count=agent_count)
    return {e["path"]: e["message"] for e in failure.value.errors}


def test_config_fills_every_default():
    assert validate_pattern_config("handoff", None, agent_count=2) == {
        "timeout_s": 300,
        "on_agent_error": "fail",
        "max_total_cost_usd": None,
        "escalate_field": "escalate",
        "confidence_field": None,
        "min_confidence": None,
    }
    assert validate_pattern_config("supervisor_worker", {}, agent_count=2)["routing"] == {"mode": "semantic"}
    assert validate_pattern_config("debate", {}, agent_count=3)["rounds"] == 2
    assert validate_pattern_config("blackboard", {}, agent_count=3)["max_iterations"] == 5
    assert validate_pattern_config("consensus", {}, agent_count=3)["threshold"] == "majority"


def test_config_validation_is_idempotent():
    config = validate_pattern_config(
        "sequential", {"mapping": [None, {"draft": "input.question"}], "timeout_s": 30}, agent_count=2
    )

    assert validate_pattern_config("sequential", config, agent_count=2) == config


@pytest.mark.parametrize(
    ("pattern_id", "count"),
    [
        ("sequential", 1),
        ("sequential", 11),
        ("parallel", 21),
        ("supervisor_worker", 21),
        ("router", 1),
        ("ensemble", 2),
        ("consensus", 2),
        ("debate", 2),
        ("debate", 6),
        ("handoff", 6),
        ("blackboard", 11),
    ],
)
def test_config_rejects_an_agent_count_out_of_the_patterns_bounds(pattern_id, count):
    pattern = PATTERNS[pattern_id]

    errors = errors_of(pattern_id, {}, agent_count=count)

    bounds = f"{pattern.min_agents} to {pattern.max_agents}"
    assert errors == {"agent_ids": f"{pattern_id} takes {bounds} agents, got {count}"}


@pytest.mark.parametrize("pattern_id", list(PATTERNS))
def test_config_accepts_the_bounds_of_every_pattern(pattern_id):
    pattern = PATTERNS[pattern_id]
    for count in (pattern.min_agents, pattern.max_agents):
        validate_pattern_config(pattern_id, {}, agent_count=count)


def test_config_rejects_unknown_keys_and_suggests_the_close_one():
    errors = errors_of("debate", {"round": 3})

    assert errors == {"round": "unknown key 'round'; did you mean 'rounds'?"}


def test_config_reports_every_bad_value_with_its_path():
    errors = errors_of(
        "supervisor_worker",
        {
            "timeout_s": "fast",
            "on_agent_error": "ignore",
            "max_total_cost_usd": 0,
            "max_subtasks": True,
            "routing": {"mode": "random", "extra": 1},
        },
    )

    assert set(errors) == {
        "timeout_s",
        "on_agent_error",
        "max_total_cost_usd",
        "max_subtasks",
        "routing.mode",
        "routing.extra",
    }
    assert errors["on_agent_error"] == "unknown value 'ignore'; expected one of: fail, continue"
    assert errors["max_total_cost_usd"].startswith("must be greater than 0")
    assert errors["max_subtasks"] == "must be an integer, got a boolean"


@pytest.mark.parametrize(
    ("pattern_id", "data", "path"),
    [
        ("debate", {"rounds": 0}, "rounds"),
        ("debate", {"rounds": 2.5}, "rounds"),
        ("blackboard", {"max_iterations": 51}, "max_iterations"),
        ("parallel", {"max_concurrency": "all"}, "max_concurrency"),
        ("router", {"fallback": "random"}, "fallback"),
        ("consensus", {"decision_field": "my vote"}, "decision_field"),
        ("consensus", {"threshold": 0.5}, "threshold"),
        ("handoff", {"confidence_field": "confidence", "min_confidence": 1.5}, "min_confidence"),
        ("ensemble", {"synthesis_prompt": ""}, "synthesis_prompt"),
        ("supervisor_worker", {"routing": "semantic"}, "routing"),
        ("sequential", {"timeout_s": 0}, "timeout_s"),
    ],
)
def test_config_checks_types_and_bounds(pattern_id, data, path):
    assert list(errors_of(pattern_id, data)) == [path]


def test_sequential_mapping_errors_name_the_entry_and_field():
    errors = errors_of("sequential", {"mapping": [None, {"draft": "bad-source", "1st": "text"}, "text"]})

    assert set(errors) == {"mapping[1].draft", "mapping[1].1st", "mapping[2]"}


def test_sequential_mapping_may_not_have_more_entries_than_agents():
    assert list(errors_of("sequential", {"mapping": [None, None, None]}, agent_count=2)) == ["mapping"]


def test_handoff_confidence_field_and_minimum_go_together():
    assert list(errors_of("handoff", {"min_confidence": 0.5})) == ["confidence_field"]
    assert list(errors_of("handoff", {"confidence_field": "confidence"})) == ["min_confidence"]


def test_config_rejects_an_unknown_pattern_and_a_non_mapping():
    assert list(errors_of("pipeline", {})) == ["pattern"]
    assert errors_of("router", ["fallback"]) == {"": "must be a mapping, got an array"}
