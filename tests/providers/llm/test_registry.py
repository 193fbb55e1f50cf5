"""The registry picks the adapter of a provider kind."""

from __future__ import annotations

import pytest

from providers.llm.anthropic_adapter import AnthropicAdapter
from providers.llm.mock_adapter import MockAdapter
from providers.llm.openai_adapter import OpenAIAdapter
from providers.llm.registry import create_adapter
from providers.llm.types import PROVIDER_KINDS, ProviderSettings


@pytest.mark.parametrize(
    ("kind", "adapter_class"),
    [
        ("openai", OpenAIAdapter),
        ("azure_openai", OpenAIAdapter),
        ("ollama", OpenAIAdapter),
        ("openai_compatible", OpenAIAdapter),
        ("anthropic", AnthropicAdapter),
        ("mock", MockAdapter),
    ],
)
def test_each_kind_gets_its_adapter(kind, adapter_class):
    settings = ProviderSettings(kind=kind, api_key="k", base_url="https://llm.example.com/v1")

    adapter = create_adapter(settings)

    assert type(adapter) is adapter_class
    assert adapter.settings is settings


def test_every_declared_kind_has_an_adapter():
    for kind in PROVIDER_KINDS:
        create_adapter(ProviderSettings(kind=kind, base_url="https://llm.example.com/v1"))


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown provider kind 'cohere'"):
        create_adapter(ProviderSettings(kind="cohere"))
