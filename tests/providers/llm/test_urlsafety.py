"""Provider base URLs cannot reach loopback, private, link-local or otherwise internal addresses."""

from __future__ import annotations

import socket

import pytest

from providers.llm.types import ProviderError, UnsafeProviderUrl
from providers.llm.urlsafety import check_base_url, check_base_url_sync

INTERNAL_URLS = [
    "https://127.0.0.1/v1",
    "https://127.1/v1",  # shorthand of 127.0.0.1, resolved like a name
    "https://10.1.2.3/v1",
    "https://172.16.0.9/v1",
    "https://192.168.1.1/v1",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/v1",
    "https://0.0.0.0/v1",
    "https://224.0.0.1/v1",
    "https://[::1]/v1",
    "https://[fe80::1]/v1",
    "https://[fc00::1]/v1",
    "https://[::ffff:127.0.0.1]/v1",
    "https://[::ffff:169.254.169.254]/v1",
    "https://localhost:11434/v1",
]


@pytest.fixture
def dns(monkeypatch):
    """Answer DNS lookups from a table (both checks resolve through `socket.getaddrinfo`)."""
    answers: dict[str, str] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize("url", INTERNAL_URLS)
async def test_internal_targets_are_refused(url):
    with pytest.raises(UnsafeProviderUrl, match="non-public address"):
        await check_base_url(url, allow_private=False)


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_targets_are_refused_by_the_sync_check(url):
    with pytest.raises(UnsafeProviderUrl, match="non-public address"):
        check_base_url_sync(url, allow_private=False)


async def test_a_name_that_resolves_to_a_private_address_is_refused(dns):
    dns["models.example.com"] = "10.0.0.7"

    with pytest.raises(UnsafeProviderUrl, match=r"'models.example.com' resolves to 10.0.0.7"):
        await check_base_url("https://models.example.com/v1", allow_private=False)


async def test_a_name_that_resolves_to_a_public_address_is_accepted(dns):
    dns["models.example.com"] = "93.184.216.34"

    await check_base_url("https://models.example.com/v1", allow_private=False)
    check_base_url_sync("https://models.example.com/v1", allow_private=False)


async def test_a_public_ip_literal_needs_no_dns(dns):
    await check_base_url("https://8.8.8.8/v1", allow_private=False)


@pytest.mark.parametrize("url", ["http://api.openai.com/v1", "ftp://api.openai.com", "api.openai.com/v1"])
async def test_only_https_is_accepted(url):
    with pytest.raises(UnsafeProviderUrl, match="must use https"):
        await check_base_url(url, allow_private=False)


async def test_a_url_without_a_host_is_refused():
    with pytest.raises(UnsafeProviderUrl, match="no host"):
        await check_base_url("https:///v1", allow_private=False)


async def test_an_unresolvable_host_is_a_provider_error(dns):
    with pytest.raises(ProviderError, match="cannot resolve"):
        await check_base_url("https://nowhere.invalid/v1", allow_private=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:11434/v1", "https://10.1.2.3/v1", "http://localhost/v1"])
async def test_allow_private_permits_local_servers_and_http(url):
    await check_base_url(url, allow_private=True)
    check_base_url_sync(url, allow_private=True)
