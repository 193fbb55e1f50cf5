"""Provider failures translated into the product's `LLMError`s, with secrets kept out of messages."""

from __future__ import annotations

import re
from collections.abc import Mapping

import anthropic
import httpx2
import openai

from providers.llm.transport import ResponseTooLarge
from providers.llm.types import (
    InvalidApiKey,
    LLMError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
)

AUTH_ERRORS = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    anthropic.AuthenticationError,
    anthropic.PermissionDeniedError,
)
RATE_LIMIT_ERRORS = (openai.RateLimitError, anthropic.RateLimitError)
# The httpx2 errors surface while a stream is read, after the SDK handed it over.
TIMEOUT_ERRORS = (openai.APITimeoutError, anthropic.APITimeoutError, httpx2.TimeoutException, TimeoutError)
STATUS_ERRORS = (openai.APIStatusError, anthropic.APIStatusError)
CONNECTION_ERRORS = (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.TransportError)

MAX_REASON_CHARS = 300
# Key-shaped tokens a provider may quote back, whole or masked ("sk-proj-****abcd").
_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|key)-[\w*.\-]{6,}")


def translate_error(exc: BaseException, *, api_key: str, timeout_s: float) -> LLMError:
    """The `LLMError` to report for `exc`, raised while calling a provider with `api_key`."""
    # Ours already, or raised under the SDK (the transport refusing an address) and wrapped by it.
    ours = _cause(exc, LLMError)
    if ours is not None:
        return ours
    if _cause(exc, ResponseTooLarge) is not None:
        return ProviderError("response too large")
    if isinstance(exc, AUTH_ERRORS):
        return InvalidApiKey(f"the provider rejected the API key: {_reason(exc, api_key)}")
    if isinstance(exc, RATE_LIMIT_ERRORS):
        retry_after = _retry_after(exc.response.headers)
        return ProviderRateLimited(
            f"the provider is rate limiting: {_reason(exc, api_key)}", retry_after=retry_after
        )
    if isinstance(exc, TIMEOUT_ERRORS):
        return ProviderTimeout(f"the provider did not answer within {timeout_s:g} s")
    if isinstance(exc, STATUS_ERRORS):
        return ProviderError(_status_message(exc, api_key))
    if isinstance(exc, CONNECTION_ERRORS):
        return ProviderError("the connection to the provider failed")
    return ProviderError(f"unexpected provider failure ({type(exc).__name__})")


def redact(text: str, secret: str) -> str:
    """`text` without `secret` or anything shaped like an API key."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _cause(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """`exc` or the first exception of `kind` in its chain of causes."""
    while exc is not None:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__
    return None


def _reason(exc: openai.APIStatusError | anthropic.APIStatusError, api_key: str) -> str:
    body = exc.body
    inner = body.get("error", body) if isinstance(body, Mapping) else body
    message = inner.get("message") if isinstance(inner, Mapping) else inner
    reason = message if isinstance(message, str) and message else f"HTTP {exc.status_code}"
    return redact(reason, api_key)[:MAX_REASON_CHARS]


def _status_message(exc: openai.APIStatusError | anthropic.APIStatusError, api_key: str) -> str:
    if 300 <= exc.status_code < 400:
        return f"the provider answered with a redirect (HTTP {exc.status_code}), which is not followed"
    return f"the provider failed (HTTP {exc.status_code}): {_reason(exc, api_key)}"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        try:
            return float(headers[name]) / divisor
        except (KeyError, ValueError):
            continue
    return None
