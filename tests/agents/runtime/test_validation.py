"""The one config validator: paths, suggestions and unknown keys as the agent schema, the pattern
options and the official template files all report them (no Django)."""

from __future__ import annotations

import pytest

from agents.runtime.validation import (
    ConfigError,
    check_known_keys,
    did_you_mean,
    format_path,
    join,
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


def test_unknown_keys_are_each_reported_at_their_path_in_either_form():
    errors: list[dict[str, str]] = []
    check_known_keys({"mode": "x", "mdoe": 1, "extra": 2}, ["mode", "fallback"], "routing", errors)
    check_known_keys({"round": 3}, ["timeout_s", "rounds"], "", errors, sorted_keys=True)
    check_known_keys({"zzz": 3}, ["timeout_s", "rounds"], "", errors, sorted_keys=True)

    assert errors == [
        {"path": "routing.mdoe", "message": "unknown key 'mdoe'; did you mean 'mode'?"},
        {"path": "routing.extra", "message": "unknown key 'extra'; expected one of: mode, fallback"},
        {
            "path": "round",
            "message": "unknown key 'round' (did you mean 'rounds'?); allowed keys: rounds, timeout_s",
        },
        {"path": "zzz", "message": "unknown key 'zzz'; allowed keys: rounds, timeout_s"},
    ]


def test_a_config_error_keeps_every_error_and_reads_as_one_line():
    with pytest.raises(ConfigError) as caught:
        raise ConfigError([{"path": "a.b", "message": "is required"}, {"path": "c", "message": 3}])

    assert caught.value.errors == [{"path": "a.b", "message": "is required"}, {"path": "c", "message": "3"}]
    assert str(caught.value) == "a.b: is required; c: 3"
