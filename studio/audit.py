"""The one audit call every mutation makes, and the middleware that gives it the client context.

The `AuditLog` model lives in observability; it is looked up by label so that apps below
observability in the layering (accounts) can audit too."""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps

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
    return request.META.get("REMOTE_ADDR") or None, request.META.get("HTTP_USER_AGENT", "")[:256]
