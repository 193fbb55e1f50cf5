"""The one audit call every mutation makes, and the middleware that gives it the client context.

The `AuditLog` model lives in observability; it is looked up by label so that apps below
observability in the layering (accounts) can audit too."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"(password|secret|token|api_?key$|^key$|authorization|encrypted|fernet)", re.I)
_client: ContextVar[tuple[str | None, str]] = ContextVar("audit_client", default=(None, ""))


def redact(value: Any) -> Any:
    """A copy of `value` with every secret-looking field replaced by a marker."""
    if isinstance(value, Mapping):
        return {k: REDACTED if _SECRET_NAME.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def audit_record(
    *,
    actor,
    organization_id: str | None,
    operation: str,
    instance=None,
    model_name: str | None = None,
    record_id: str = "",
    changes: Mapping[str, Any] | None = None,
):
    """Write one AuditLog row: who did what to which record, with secrets redacted."""
    ip, user_agent = _client.get()
    return apps.get_model("observability", "AuditLog").objects.create(
        organization_id=organization_id,
        user_id=getattr(actor, "pk", None),
        actor_email=getattr(actor, "email", "") or "",  # kept when the actor's account is gone
        model_name=model_name or type(instance).__name__,
        operation_type=operation,
        record_id=record_id or (str(instance.pk) if instance is not None else ""),
        changes=redact(dict(changes or {})),
        ip_address=ip,
        user_agent=user_agent,
    )


class AuditContextMiddleware:
    """Remembers the client address and user agent of the request for `audit_record`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = _client.set(_client_of(request))
        try:
            return self.get_response(request)
        finally:
            _client.reset(token)

    async def _acall(self, request):
        token = _client.set(_client_of(request))
        try:
            return await self.get_response(request)
        finally:
            _client.reset(token)


def _client_of(request) -> tuple[str | None, str]:
    return client_address(request), request.META.get("HTTP_USER_AGENT", "")[:256]


def client_address(request) -> str | None:
    """The address of the client behind `request` (login throttling and audit rows key on it).

    `X-Forwarded-For` is believed only when the peer is a trusted proxy (`STUDIO_TRUSTED_PROXIES`):
    walking it from the right, each hop a trusted proxy appended is taken, until the first address
    that is not a trusted proxy. Anyone else can write that header, so it is ignored for them."""
    address = request.META.get("REMOTE_ADDR") or None
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed(hops):
        if address is None or not _is_trusted_proxy(address) or _ip(hop) is None:
            break
        address = hop
    return address


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted_proxy(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and any(
        ip in network for network in _trusted_networks(tuple(settings.TRUSTED_PROXIES))
    )


@functools.lru_cache(maxsize=4)
def _trusted_networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as exc:
        raise ImproperlyConfigured(f"STUDIO_TRUSTED_PROXIES: {exc}") from None
