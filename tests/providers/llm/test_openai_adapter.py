"""What the OpenAI-family adapter puts on the wire, per provider kind."""

from __future__ import annotations

import pytest

from providers.llm.openai_adapter import OLLAMA_BASE_URL, OPENAI_BASE_URL, PLACEHOLDER_KEY
from providers.llm.registry import create_adapter
from providers.llm.types import CompletionRequest, Message, ProviderSettings, ToolCall, ToolSpec

CONVERSATION = (
    Message(role="system", content="You are terse."),
    Message(role="user", content="Weather in Oslo?"),
    Message(
        role="assistant",
        tool_calls=(ToolCall(id="call_7", name="get_weather", arguments={"city": "Oslo"}),),
    ),
    Message(role="tool", content="-3 C, snow", tool_call_id="call_7"),
)
WEATHER_TOOL = ToolSpec(name="get_weather", description="Weather of a city", parameters={"type": "object"})


def sent_json(server) -> dict:
    (request,) = server.requests
    return request.json


async def test_messages_with_tool_calls_and_results_are_sent_in_chat_format(openai_provider):
    request = CompletionRequest(messages=CONVERSATION, model="gpt-4o-mini", tools=(WEATHER_TOOL,))

    await openai_provider.adapter().complete(request)

    body = sent_json(openai_provider.server)
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_7",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_7", "content": "-3 C, snow"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {"type": "object"},
            },
        }
    ]


async def test_structured_output_asks_for_the_json_schema(openai_provider):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    request = CompletionRequest(
        messages=CONVERSATION[:2], model="gpt-4o-mini", json_schema=schema, schema_name="verdict"
    )

    await openai_provider.adapter().complete(request)

    assert sent_json(openai_provider.server)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": schema, "strict": False},
    }


@pytest.mark.parametrize(
    ("kind", "token_field"), [("openai", "max_completion_tokens"), ("openai_compatible", "max_tokens")]
)
async def test_the_output_limit_uses_the_field_the_server_knows(openai_provider, kind, token_field):
    request = CompletionRequest(
        messages=CONVERSATION[:2], model="gpt-4o-mini", max_tokens=99, temperature=0.2
    )

    await openai_provider.adapter(kind=kind).complete(request)

    body = sent_json(openai_provider.server)
    assert body[token_field] == 99
    assert body["temperature"] == 0.2
    (other_field,) = {"max_tokens", "max_completion_tokens"} - {token_field}
    assert other_field not in body


async def test_a_streaming_call_asks_for_usage(openai_provider):
    request = CompletionRequest(messages=CONVERSATION[:2], model="gpt-4o-mini")

    items = [item async for item in openai_provider.adapter().stream(request)]

    assert sent_json(openai_provider.server)["stream_options"] == {"include_usage": True}
    assert items[-1].usage.input_tokens > 0


async def test_azure_calls_the_deployment_with_the_api_version_and_key_header(fake_openai):
    adapter = create_adapter(
        ProviderSettings(
            kind="azure_openai",
            api_key="test-key",
            base_url=fake_openai.url,
            api_version="2024-10-21",
            allow_private_urls=True,
        )
    )

    completion = await adapter.complete(CompletionRequest(messages=CONVERSATION[:2], model="prod-gpt4o"))

    (request,) = fake_openai.requests
    assert request.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == "test-key"
    assert completion.text == "Echo: Weather in Oslo?"


async def test_a_keyless_local_server_gets_a_placeholder_key(fake_openai):
    fake_openai.reset(api_key=PLACEHOLDER_KEY)
    adapter = create_adapter(
        ProviderSettings(kind="openai_compatible", base_url=fake_openai.base_url, allow_private_urls=True)
    )

    assert (await adapter.validate()).valid


def test_defaults_of_each_kind():
    assert create_adapter(ProviderSettings(kind="openai", api_key="k")).base_url == OPENAI_BASE_URL
    ollama = create_adapter(ProviderSettings(kind="ollama"))
    assert (ollama.base_url, ollama.api_key) == (OLLAMA_BASE_URL, PLACEHOLDER_KEY)


@pytest.mark.parametrize("kind", ["openai_compatible", "azure_openai"])
def test_kinds_without_a_default_endpoint_need_a_base_url(kind):
    with pytest.raises(ValueError, match="base URL"):
        create_adapter(ProviderSettings(kind=kind, api_key="k"))
