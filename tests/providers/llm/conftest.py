"""Fixtures of the LLM engine tests: one provider at a time, wired to its fake server.

The fake servers' fixtures come from the `tests.fakes.fixtures` plugin (enabled in tests/conftest.py;
without Django: `pytest -p no:django -p tests.fakes.fixtures --confcutdir=tests/providers/llm ...`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from providers.llm.registry import create_adapter
from providers.llm.types import LLMAdapter, ProviderSettings
from tests.fakes.server import FakeLLMServer


@dataclass
class FakeProvider:
    """A provider kind wired to its fake server."""

    kind: str
    server: FakeLLMServer

    def settings(self, **changes) -> ProviderSettings:
        base = ProviderSettings(
            kind=self.kind, api_key="test-key", base_url=self.server.base_url, allow_private_urls=True
        )
        return replace(base, **changes)

    def adapter(self, **changes) -> LLMAdapter:
        return create_adapter(self.settings(**changes))


@pytest.fixture(autouse=True)
def _close_llm_clients(llm_clients_closed):
    """Every test here closes the pooled clients of its event loop."""


@pytest.fixture(params=["openai_compatible", "anthropic"])
def provider(request, fake_openai, fake_anthropic) -> FakeProvider:
    """Each SDK-backed adapter in turn, against its fake server."""
    server = fake_anthropic if request.param == "anthropic" else fake_openai
    return FakeProvider(kind=request.param, server=server)


@pytest.fixture
def openai_provider(fake_openai) -> FakeProvider:
    return FakeProvider(kind="openai_compatible", server=fake_openai)


@pytest.fixture
def anthropic_provider(fake_anthropic) -> FakeProvider:
    return FakeProvider(kind="anthropic", server=fake_anthropic)
