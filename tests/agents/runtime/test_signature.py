"""Signature fields as JSON Schema, value checks, prompts and output parsing (no model calls)."""

from __future__ import annotations

import pytest

from agents.runtime.inputs import validate_inputs
from agents.runtime.outputs import InvalidOutput, decode_json_object, parse_output
from agents.runtime.prompt import output_fields, system_message, user_message
from agents.runtime.schema import conform, signature_json_schema
from agents.runtime.types import AgentError
from tests.agents.runtime.conftest import FakeGateway

FIELDS = [
    {"name": "text", "type": "string", "description": "The text", "required": True},
    {"name": "level", "type": "enum", "enum_values": ["low", "high"], "description": ""},
    {"name": "count", "type": "int", "required": False},
]


def test_signature_json_schema_describes_each_field_and_requires_the_required_ones():
    assert signature_json_schema(FIELDS) == {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "The text"},
            "level": {"type": "string", "enum": ["low", "high"]},
            "count": {"type": "integer"},
        },
        "required": ["text", "level"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    "kind, json_type",
    [("float", "number"), ("bool", "boolean"), ("array", "array"), ("object", "object")],
)
def test_field_types_map_to_json_types(kind, json_type):
    schema = signature_json_schema([{"name": "x", "type": kind}])
    assert schema["properties"]["x"] == {"type": json_type}


@pytest.mark.parametrize(
    "kind, value, conformed",
    [
        ("string", "hi", "hi"),
        ("int", 3, 3),
        ("int", 3.0, 3),
        ("float", 2, 2.0),
        ("bool", False, False),
        ("array", (1, 2), [1, 2]),
        ("object", {"a": 1}, {"a": 1}),
    ],
)
def test_conform_accepts_values_of_the_field_type(kind, value, conformed):
    result = conform({"name": "x", "type": kind}, value)
    assert result == conformed and type(result) is type(conformed)


@pytest.mark.parametrize(
    "kind, value, message",
    [
        ("string", 5, "expected a string, got an integer"),
        ("int", 2.5, "expected an integer, got a number"),
        ("int", True, "expected an integer, got a boolean"),
        ("int", "5", "expected an integer, got a string"),
        ("float", float("nan"), "expected a number, got a number"),
        ("bool", "true", "expected a boolean, got a string"),
        ("array", {"a": 1}, "expected an array, got an object"),
        ("object", [1], "expected an object, got an array"),
        ("string", None, "expected a string, got null"),
    ],
)
def test_conform_rejects_other_values(kind, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        conform({"name": "x", "type": kind}, value)


def test_conform_checks_enum_values():
    with pytest.raises(ValueError, match="expected one of 'low', 'high', got 'medium'"):
        conform(FIELDS[1], "medium")


def test_validate_inputs_names_every_problem():
    with pytest.raises(AgentError) as caught:
        validate_inputs(FIELDS, {"level": "medium", "count": "3", "extra": 1})
    error = caught.value
    assert (error.code, error.status) == ("invalid_input", 400)
    assert error.fields == {
        "extra": "unknown input; the inputs are: count, level, text",
        "text": "this input is required",
        "level": "expected one of 'low', 'high', got 'medium'",
        "count": "expected an integer, got a string",
    }


def test_validate_inputs_conforms_values_and_leaves_out_null_optional_inputs():
    assert validate_inputs(FIELDS, {"text": "a", "level": "low", "count": None}) == {
        "text": "a",
        "level": "low",
    }
    assert validate_inputs(FIELDS, {"text": "a", "level": "low", "count": 2.0}) == {
        "text": "a",
        "level": "low",
        "count": 2,
    }


def test_validate_inputs_rejects_a_non_object():
    with pytest.raises(AgentError, match="must be a JSON object"):
        validate_inputs(FIELDS, ["text"])


def test_the_system_message_carries_prompt_role_and_output_fields(make_spec):
    spec = make_spec(
        system_prompt="You triage support tickets.",
        outputs=[
            {"name": "reply", "type": "string", "description": "What to tell the customer"},
            {"name": "priority", "type": "enum", "enum_values": ["low", "high"]},
            {"name": "tags", "type": "array"},
        ],
    ).with_role("You are the router.", [{"name": "route_to", "type": "enum", "enum_values": ["a", "b"]}])
    assert system_message(spec, output_fields(spec)).content == (
        "You triage support tickets.\n\n"
        "You are the router.\n\n"
        "Reply with one JSON object that has exactly these fields:\n"
        "- reply (string): What to tell the customer\n"
        '- priority (one of "low", "high")\n'
        "- tags (array)\n"
        '- route_to (one of "a", "b")'
    )


def test_an_extra_output_replaces_a_signature_output_of_the_same_name(make_spec):
    spec = make_spec(outputs=[{"name": "answer", "type": "string"}, {"name": "choice", "type": "string"}])
    spec = spec.with_role("", [{"name": "choice", "type": "enum", "enum_values": ["x"]}])
    assert [(field["name"], field["type"]) for field in output_fields(spec)] == [
        ("answer", "string"),
        ("choice", "enum"),
    ]


def test_the_user_message_describes_each_provided_input():
    message = user_message(FIELDS, {"text": "Line one\nline two", "count": 3})
    assert message.role == "user"
    assert message.content == "Inputs:\n\ntext (string): The text\nLine one\nline two\n\ncount (int)\n3"
    assert user_message([], {}).content == "Inputs:\n\n(none)"


def test_parse_output_prefers_the_providers_parsed_json():
    completion = FakeGateway.answer({"text": "from parsed", "level": "low"}, text="garbage")
    assert parse_output(completion, FIELDS[:2]) == {"text": "from parsed", "level": "low"}


def test_parse_output_decodes_text_and_drops_keys_not_asked_for():
    completion = FakeGateway.answer(text='{"text": "t", "level": "high", "other": 1}')
    assert parse_output(completion, FIELDS[:2]) == {"text": "t", "level": "high"}


def test_parse_output_tolerates_a_fenced_json_block():
    text = 'Here you go:\n```json\n{"text": "t", "level": "low"}\n```\nAnything else?'
    assert parse_output(FakeGateway.answer(text=text), FIELDS[:2]) == {"text": "t", "level": "low"}


def test_parse_output_names_each_bad_field():
    with pytest.raises(InvalidOutput) as caught:
        parse_output(FakeGateway.answer({"level": "urgent"}), FIELDS[:2])
    assert caught.value.fields == {"text": "missing", "level": "expected one of 'low', 'high', got 'urgent'"}


@pytest.mark.parametrize(
    "text, message",
    [("not json", "the answer is not valid JSON"), ("[1, 2]", "the answer is an array, not a JSON object")],
)
def test_decode_json_object_explains_what_it_found(text, message):
    with pytest.raises(InvalidOutput, match=message):
        decode_json_object(text)
