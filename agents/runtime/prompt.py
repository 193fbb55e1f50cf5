"""What an agent says to the model: the system prompt with the requested output fields, the inputs,
and the follow-up requests of repair, self-reflection and react."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agents.runtime.schema import REASONING_FIELD_NAME
from agents.runtime.types import AgentSpec
from providers.llm.types import Message

Field = Mapping[str, Any]

# chain_of_thought asks for this field first, so the model reasons before it answers.
REASONING_FIELD: Field = {
    "name": REASONING_FIELD_NAME,
    "type": "string",
    "description": "Your step-by-step reasoning, written before the other fields.",
}


def output_fields(spec: AgentSpec) -> list[Field]:
    """The signature's outputs, then the spec's extra outputs (an extra output replaces a signature
    output of the same name, so a pattern's decision field is always parsed as the pattern needs)."""
    fields = {field["name"]: field for field in spec.settings.signature.outputs}
    fields.update({field["name"]: field for field in spec.extra_outputs})
    return list(fields.values())


def opening_messages(spec: AgentSpec, fields: Sequence[Field], inputs: Mapping[str, Any]) -> list[Message]:
    """The system message asking for `fields` and the user message carrying the inputs."""
    return [system_message(spec, fields), user_message(spec.settings.signature.inputs, inputs)]


def system_message(spec: AgentSpec, fields: Sequence[Field]) -> Message:
    """The signature's system prompt, the role instructions, then the output fields to answer with."""
    parts = [spec.settings.signature.system_prompt, spec.role_instructions, output_instructions(fields)]
    return Message("system", "\n\n".join(part.strip() for part in parts if part.strip()))


def output_instructions(fields: Sequence[Field]) -> str:
    lines = ["Reply with one JSON object that has exactly these fields:"]
    lines += [f"- {describe_field(field)}" for field in fields]
    return "\n".join(lines)


def user_message(input_fields: Sequence[Field], inputs: Mapping[str, Any]) -> Message:
    """Each provided input under a heading naming the field, its type and description."""
    blocks = [
        f"{describe_field(field)}\n{render_value(inputs[field['name']])}"
        for field in input_fields
        if field["name"] in inputs
    ]
    return Message("user", "Inputs:\n\n" + ("\n\n".join(blocks) if blocks else "(none)"))


def describe_field(field: Field) -> str:
    """`priority (one of "low", "high"): How urgent it is`."""
    kind = field["type"]
    if kind == "enum":
        kind = "one of " + ", ".join(json.dumps(value) for value in field["enum_values"])
    text = f"{field['name']} ({kind})"
    return f"{text}: {field['description']}" if field.get("description") else text


def render_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def repair_request(problem: str) -> Message:
    return Message(
        "user",
        f"That answer could not be used: {problem}. "
        "Reply again with only the JSON object, with every field and the right types.",
    )


def critique_request() -> Message:
    return Message(
        "user",
        "Review your answer above against the instructions, the inputs and the output fields. "
        'Reply with a JSON object {"ok": true/false, "critique": "..."}: ok is true when the answer '
        "needs no change; otherwise critique says precisely what to fix.",
    )


def revise_request() -> Message:
    return Message("user", "Revise your answer to fix what the critique found. Reply with the JSON object.")


def final_answer_request() -> Message:
    return Message(
        "user", "You have used all your tool steps. Answer now with the JSON object, without tools."
    )


def answer_message(answer: Mapping[str, Any]) -> Message:
    """An accepted structured answer, replayed as the assistant's turn of the conversation."""
    return Message("assistant", json.dumps(answer, ensure_ascii=False))
