"""Provider base URLs may not reach into our own network (SSRF): https to public addresses only.

`allow_private=True` (STUDIO_ALLOW_PRIVATE_PROVIDER_URLS) lifts both rules, for a local Ollama or
the fake servers of the tests. Adapters check again at call time, because DNS answers change, and
the HTTP transport checks the addresses it connects to (`check_addresses`), so an answer that
changed between the check and the connection cannot point the call at our network either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from providers.llm.types import ProviderError, UnsafeProviderUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}


async def check_base_url(url: str, *, allow_private: bool) -> None:
    """Raise `UnsafeProviderUrl` unless `url` is https and every address of its host is public."""
    host = _host_to_resolve(url, allow_private=allow_private)
    if host is None:
        return
    check_addresses(host, await resolve_host(host, 443))


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (`ProviderError` when it does not resolve)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise ProviderError(f"cannot resolve the provider host {host!r}") from None
    return [info[4][0] for info in infos]


def check_base_url_sync(url: str, *, allow_private: bool) -> None:
    """`check_base_url` for synchronous callers (serializers)."""
    host = _host_to_resolve(url, allow_private=allow_private)
    if host is None:
        return
    try:
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError:
        raise ProviderError(f"cannot resolve the provider host {host!r}") from None
    check_addresses(host, [info[4][0] for info in infos])


def check_no_credentials(url: str) -> None:
    """Raise `UnsafeProviderUrl` for a URL with userinfo (`user:pass@`) or a query string: a base URL
    is shown in reads, audit rows and exported code, so it may not carry secrets."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise UnsafeProviderUrl(
            "provider URL may not contain a user name or password; send the key as api_key"
        )
    if parts.query or parts.fragment:
        raise UnsafeProviderUrl("provider URL may not have a query string or fragment")


def url_origin(url: str) -> str:
    """`scheme://host:port` of `url`: what decides which server receives a request. "" for no URL
    (the kind's default endpoint); a URL that does not parse is its own origin."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}:{port}"


def is_public_address(address: IPAddress) -> bool:
    """Whether `address` is a globally routable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    )


def _host_to_resolve(url: str, *, allow_private: bool) -> str | None:
    """Check what needs no DNS; return the host to resolve, or None when nothing is left to check."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError:
        raise UnsafeProviderUrl("provider URL is not a valid URL") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise UnsafeProviderUrl(f"provider URL must use https, not {parts.scheme or 'no scheme'!r}")
    if not host:
        raise UnsafeProviderUrl("provider URL has no host")
    if allow_private:
        return None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return host
    check_addresses(host, [str(literal)])
    return None


def check_addresses(host: str, addresses: list[str]) -> None:
    """Raise `UnsafeProviderUrl` unless every address `host` resolved to is public."""
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
        if not is_public_address(address):
            raise UnsafeProviderUrl(
                f"provider host {host!r} resolves to {address}, a loopback, private, link-local or "
                "otherwise non-public address"
            )
