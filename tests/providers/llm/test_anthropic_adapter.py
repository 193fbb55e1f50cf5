"""What the Anthropic adapter puts on the wire, and how it reads structured answers back."""

from __future__ import annotations

from providers.llm.anthropic_format import DEFAULT_MAX_TOKENS
from providers.llm.types import CompletionRequest, Message, ToolCall, ToolSpec
from tests.fakes.behaviours import answer, json_answer

WEATHER_TOOL = ToolSpec(name="get_weather", description="Weather of a city", parameters={"type": "object"})
CONVERSATION = (
    Message(role="system", content="You are terse."),
    Message(role="system", content="Answer in Celsius."),
    Message(role="user", content="Weather in Oslo and Rome?"),
    Message(
        role="assistant",
        content="Checking both.",
        tool_calls=(
            ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Oslo"}),
            ToolCall(id="toolu_2", name="get_weather", arguments={"city": "Rome"}),
        ),
    ),
    Message(role="tool", content="-3", tool_call_id="toolu_1"),
    Message(role="tool", content="18", tool_call_id="toolu_2"),
)
VERDICT_SCHEMA = {"type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}


def sent_json(server) -> dict:
    (request,) = server.requests
    return request.json


async def test_system_prompts_tools_and_tool_results_are_sent_in_messages_format(anthropic_provider):
    request = CompletionRequest(messages=CONVERSATION, model="claude-haiku-4-5", tools=(WEATHER_TOOL,))

    await anthropic_provider.adapter().complete(request)

    body = sent_json(anthropic_provider.server)
    assert body["system"] == "You are terse.\n\nAnswer in Celsius."
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather of a city", "input_schema": {"type": "object"}}
    ]
    assert "tool_choice" not in body
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "18"},
            ],
        },
    ]


async def test_structured_output_forces_a_tool_named_after_the_schema(anthropic_provider):
    anthropic_provider.server.enqueue(json_answer({"verdict": "guilty"}))
    request = CompletionRequest(
        messages=CONVERSATION[2:3],
        model="claude-haiku-4-5",
        json_schema=VERDICT_SCHEMA,
        schema_name="verdict_output",
        max_tokens=300,
    )

    completion = await anthropic_provider.adapter().complete(request)

    body = sent_json(anthropic_provider.server)
    assert body["tool_choice"] == {"type": "tool", "name": "verdict_output"}
    assert body["tools"][-1]["input_schema"] == VERDICT_SCHEMA
    assert body["max_tokens"] == 300
    assert completion.parsed == {"verdict": "guilty"}
    assert completion.text == '{"verdict": "guilty"}'
    assert completion.tool_calls == ()
    assert completion.finish_reason == "stop"


async def test_cache_reads_count_as_cached_input_tokens(anthropic_provider):
    anthropic_provider.server.enqueue(answer("Cached.", cached_tokens=40))

    completion = await anthropic_provider.adapter().complete(
        CompletionRequest(messages=CONVERSATION[2:3], model="claude-haiku-4-5")
    )

    assert completion.usage.cached_input_tokens == 40
    assert completion.usage.input_tokens > 40  # cache reads are part of the prompt


async def test_streamed_text_arrives_as_deltas(anthropic_provider):
    anthropic_provider.server.enqueue(answer("Snow in Oslo.", chunks=("Snow ", "in ", "Oslo.")))

    items = [
        item
        async for item in anthropic_provider.adapter().stream(
            CompletionRequest(messages=CONVERSATION[2:3], model="claude-haiku-4-5")
        )
    ]

    assert [item.text for item in items[:-1]] == ["Snow ", "in ", "Oslo."]
    assert items[-1].text == "Snow in Oslo."
    assert items[-1].finish_reason == "stop"
