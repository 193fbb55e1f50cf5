"""The adapter for a provider kind."""

from __future__ import annotations

from providers.llm.anthropic_adapter import AnthropicAdapter
from providers.llm.mock_adapter import MockAdapter
from providers.llm.openai_adapter import OpenAIAdapter
from providers.llm.types import LLMAdapter, ProviderSettings

ADAPTERS = {
    "openai": OpenAIAdapter,
    "azure_openai": OpenAIAdapter,
    "ollama": OpenAIAdapter,
    "openai_compatible": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "mock": MockAdapter,
}


def create_adapter(settings: ProviderSettings) -> LLMAdapter:
    """The adapter for `settings.kind`; ValueError for an unknown kind or a missing base URL."""
    adapter_class = ADAPTERS.get(settings.kind)
    if adapter_class is None:
        raise ValueError(f"unknown provider kind {settings.kind!r}; expected one of {', '.join(ADAPTERS)}")
    return adapter_class(settings)
