"""Pytest fixtures for the fake LLM servers (enable with `pytest_plugins = ["tests.fakes.fixtures"]`).

Each server starts once per session; the function-scoped fixtures reset it (script, recorded
requests, valid key `test-key`) so every test starts clean and fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from providers.llm.clients import close_clients
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.mcp_server import FakeMcpServer
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


@pytest.fixture(scope="session")
def fake_mcp_server() -> Iterator[FakeMcpServer]:
    with FakeMcpServer() as server:
        yield server


@pytest.fixture
def fake_mcp(fake_mcp_server: FakeMcpServer, settings) -> FakeMcpServer:
    """The FastMCP fake at `.url` (on loopback, so private URLs are allowed), no calls recorded,
    running again if a test stopped it."""
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    fake_mcp_server.reset()
    fake_mcp_server.ensure_running()
    return fake_mcp_server


@pytest.fixture
async def llm_clients_closed() -> AsyncIterator[None]:
    """Close the pooled SDK clients of the test's event loop when the test ends."""
    yield
    await close_clients()
