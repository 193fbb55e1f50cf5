"""Pytest fixtures for the fake LLM servers (enable with `pytest_plugins = ["tests.fakes.fixtures"]`).

Each server starts once per session; the function-scoped fixtures reset it (script, recorded
requests, valid key `test-key`) so every test starts clean and fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from providers.llm.clients import close_clients
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    """A fake OpenAI-compatible server at `.base_url` that accepts the key `test-key`."""
    fake_openai_server.reset()
    return fake_openai_server


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeAnthropicServer) -> FakeAnthropicServer:
    """A fake Anthropic server at `.base_url` that accepts the key `test-key`."""
    fake_anthropic_server.reset()
    return fake_anthropic_server


@pytest.fixture
async def llm_clients_closed() -> AsyncIterator[None]:
    """Close the pooled SDK clients of the test's event loop when the test ends."""
    yield
    await close_clients()
