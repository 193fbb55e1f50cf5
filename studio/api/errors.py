"""The one error envelope: `{"error": {"code", "message", "fields"}}` for every failure."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error with a product code, e.g. `ApiError(409, "conflict", "The name is taken.")`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.fields = dict(fields or {})
        self.retry_after = retry_after


_CODES = {
    exceptions.ValidationError: ("validation_error", "The request is invalid."),
    exceptions.ParseError: ("malformed_request", None),
    exceptions.NotAuthenticated: ("not_authenticated", "Authentication credentials were not provided."),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.Throttled: ("rate_limited", None),
}


def error_body(code: str, message: str, fields: Mapping[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": dict(fields or {})}}


def _flatten_fields(detail: Any) -> dict:
    """DRF validation detail -> {field: [messages]} (nested serializers keep dotted paths)."""
    if isinstance(detail, Mapping):
        flat: dict[str, Any] = {}
        for key, value in detail.items():
            if isinstance(value, Mapping):
                for sub, messages in _flatten_fields(value).items():
                    flat[f"{key}.{sub}"] = messages
            else:
                flat[str(key)] = [str(item) for item in value] if isinstance(value, list) else [str(value)]
        return flat
    if isinstance(detail, list):
        return {"non_field_errors": [str(item) for item in detail]}
    return {"non_field_errors": [str(detail)]}


def _describe(exc: exceptions.APIException) -> tuple[str, str, dict]:
    if isinstance(exc, ApiError):
        return exc.error_code, exc.message, exc.fields
    code, default_message = next(
        (entry for klass, entry in _CODES.items() if isinstance(exc, klass)), ("error", None)
    )
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        first = next(iter(fields.values()), [default_message])
        message = first[0] if list(fields) == ["non_field_errors"] else default_message
        return code, message, fields
    return code, default_message or str(exc.detail), {}


def as_api_error(exc: Exception) -> ApiError | None:
    """Errors of the engine and services carry their own API `code`, `status` and `message`
    (LLMError, AgentError, RunFailed, ...): they become ApiErrors without a mapping table."""
    status, code = getattr(exc, "status", None), getattr(exc, "code", None)
    if not (isinstance(status, int) and 400 <= status < 600 and isinstance(code, str)):
        return None
    return ApiError(
        status,
        code,
        getattr(exc, "message", None) or str(exc),
        fields=getattr(exc, "fields", None),
        retry_after=getattr(exc, "retry_after", None),
    )


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """DRF exception handler: every error, including unexpected ones, in the standard envelope."""
    if not isinstance(exc, exceptions.APIException):
        exc = as_api_error(exc) or exc
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        set_rollback()
        return Response(
            error_body("server_error", "Something went wrong on our side."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    code, message, fields = _describe(exc)
    headers = {}
    wait = getattr(exc, "retry_after", None) or getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = str(max(1, int(round(wait))))
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    set_rollback()
    return Response(error_body(code, message, fields), status=exc.status_code, headers=headers)


def json_error(status_code: int, code: str, message: str, **extra_headers: str) -> JsonResponse:
    """The envelope outside DRF (plain Django views, 404/500 handlers)."""
    response = JsonResponse(error_body(code, message), status=status_code)
    for name, value in extra_headers.items():
        response[name.replace("_", "-")] = value
    return response


def not_found_view(request, exception=None):
    return json_error(404, "not_found", "Not found.")


def server_error_view(request):
    return json_error(500, "server_error", "Something went wrong on our side.")
