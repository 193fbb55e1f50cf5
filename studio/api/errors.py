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

from studio.errors import CodedError

logger = logging.getLogger(__name__)

# The challenge of a 401 from the API (what simplejwt's authenticate_header says too).
API_CHALLENGE = 'Bearer realm="api"'


class ApiError(CodedError, exceptions.APIException):
    """An error with a product code, e.g. `ApiError(409, "conflict", "The name is taken.")`. Also a
    DRF APIException, so that DRF treats it as one of its own (authentication, WebSocket checks)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, code=code, status=status_code, fields=fields, retry_after=retry_after)
        self.detail = exceptions.ErrorDetail(message, code=code)  # what DRF reads (`get_codes`)

    @property
    def status_code(self) -> int:  # DRF's name for `status`
        return self.status


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


def error_envelope(error: CodedError, *, challenge: str = API_CHALLENGE) -> tuple[int, dict, dict[str, str]]:
    """The one rendering of an error, on every channel (HTTP, SSE, WebSocket frames, MCP tool
    errors): its status, the standard body, and the headers: `Retry-After` (whole seconds, at least
    1) when the error says when to retry, `WWW-Authenticate: <challenge>` on a 401."""
    headers = {}
    if error.retry_after:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.status == 401:
        headers["WWW-Authenticate"] = challenge
    return error.status, error_body(error.code, error.message, error.fields), headers


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
    code, default_message = next(
        (entry for klass, entry in _CODES.items() if isinstance(exc, klass)), ("error", None)
    )
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        first = next(iter(fields.values()), [default_message])
        message = first[0] if list(fields) == ["non_field_errors"] else default_message
        return code, message, fields
    return code, default_message or str(exc.detail), {}


def as_coded_error(exc: Exception) -> CodedError | None:
    """`exc` as the product's error: ours as it is; DRF's and Django's own (404, 403, validation,
    throttling, ...) as ApiErrors; None for anything else, which is a fault to hide from clients,
    whatever attributes it has."""
    if isinstance(exc, CodedError):
        return exc
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    code, message, fields = _describe(exc)
    return ApiError(exc.status_code, code, message, fields=fields, retry_after=getattr(exc, "wait", None))


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """DRF exception handler: every error, including unexpected ones, in the standard envelope."""
    set_rollback()
    error = as_coded_error(exc)
    if error is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return Response(
            error_body("server_error", "Something went wrong on our side."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    challenge = getattr(exc, "auth_header", None) or API_CHALLENGE  # DRF's 401s name the authenticator's
    status_code, body, headers = error_envelope(error, challenge=challenge)
    return Response(body, status=status_code, headers=headers)


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
