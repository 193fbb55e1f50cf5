"""The one config validator: paths, suggestions, unknown keys and the value checks the agent
schema, the pattern options and the official template files are all built from (no Django)."""

from __future__ import annotations

import pytest

from agents.runtime.validation import (
    OMIT,
    ConfigError,
    Key,
    boolean,
    check_known_keys,
    choice,
    did_you_mean,
    format_path,
    integer,
    join,
    list_of,
    mapping,
    number,
    string,
    suggestion,
)


def test_paths_read_as_written_in_yaml():
    assert format_path(("signature", "outputs", 1, "enum_values")) == "signature.outputs[1].enum_values"
    assert format_path((0, "name")) == "[0].name"
    assert format_path(()) == ""
    assert join("", "rounds") == "rounds" and join("routing", "mode") == "routing.mode"


def test_a_close_word_is_suggested_else_every_option_is_listed():
    assert did_you_mean("temprature", ["temperature", "max_tokens"]) == "did you mean 'temperature'?"
    assert did_you_mean("zzz", ["temperature", "max_tokens"]) is None
    assert suggestion("zzz", ["temperature", "max_tokens"]) == "expected one of: temperature, max_tokens"


def test_unknown_keys_are_each_reported_at_their_path():
    errors: list[dict[str, str]] = []
    check_known_keys({"mode": "x", "mdoe": 1, "extra": 2}, ["mode", "fallback"], "routing", errors)
    check_known_keys({"round": 3}, ["timeout_s", "rounds"], "", errors)
    check_known_keys({"zzz": 3}, ["timeout_s", "rounds"], "", errors)

    assert errors == [
        {"path": "routing.mdoe", "message": "unknown key 'mdoe'; did you mean 'mode'?"},
        {"path": "routing.extra", "message": "unknown key 'extra'; expected one of: mode, fallback"},
        {"path": "round", "message": "unknown key 'round'; did you mean 'rounds'?"},
        {"path": "zzz", "message": "unknown key 'zzz'; expected one of: timeout_s, rounds"},
    ]


def test_a_mapping_fills_defaults_and_reads_null_as_the_default_only_when_asked():
    keys = {
        "mode": Key(choice(("semantic", "round_robin")), "semantic"),
        "rounds": Key(integer(1, 10), 2),
        "cap": Key(number(0, 1), None),
        "extra": Key(string(), OMIT),
        "name": Key(string(non_empty=True)),
    }
    errors: list[dict[str, str]] = []

    assert mapping(keys)({"name": "x"}, "", errors) == {
        "mode": "semantic",
        "rounds": 2,
        "cap": None,
        "name": "x",
    }
    assert mapping(keys, null_is_default=True)({"rounds": None, "name": "x"}, "", errors)["rounds"] == 2
    assert errors == []
    mapping(keys)({"rounds": None, "cap": None}, "opts", errors)
    assert errors == [
        {"path": "opts.rounds", "message": "must be an integer, got null"},
        {"path": "opts.name", "message": "is required"},
    ]


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (choice(("fail", "continue")), "contniue", "unknown value 'contniue'; did you mean 'continue'?"),
        (choice(("fail", "continue")), 3, "must be one of fail, continue, got an integer"),
        (integer(1, 5), 7, "must be at least 1 and at most 5, got 7"),
        (integer(1, 5), 2.5, "must be an integer, got a number"),
        (number(0, 3600, low_exclusive=True), 0, "must be greater than 0 and at most 3600, got 0"),
        (number(0), float("nan"), "must be at least 0, got nan"),
        (number(0), True, "must be a number, got a boolean"),
        (string(max_length=3), "abcd", "must be at most 3 characters, got 4"),
        (string(non_empty=True), " ", "must not be empty"),
        (boolean, "yes", "must be true or false, got a string"),
        (list_of(boolean, max_items=1), [True, False], "must have between 0 and 1 items, got 2"),
    ],
)
def test_each_kind_of_mistake_has_one_wording(check, value, message):
    errors: list[dict[str, str]] = []

    assert check(value, "at", errors) is None
    assert errors == [{"path": "at", "message": message}]


def test_a_config_error_keeps_every_error_and_reads_as_one_line():
    with pytest.raises(ConfigError) as caught:
        raise ConfigError([{"path": "a.b", "message": "is required"}, {"path": "c", "message": 3}])

    assert caught.value.errors == [{"path": "a.b", "message": "is required"}, {"path": "c", "message": "3"}]
    assert str(caught.value) == "a.b: is required; c: 3"
