"""Login brute-force protection, shared by the API login and the operators' admin login.

Each attempt is counted per (email, client address) *before* the password is checked, with an
atomic cache increment, so parallel attempts cannot get more guesses than the limit between them;
keying on the pair means one client's lockout never locks anyone else out of the same account.
A correct password takes its attempt back. Every lockout of a pair within a day doubles the next
one. When the counters cannot be reached, logins are refused: an outage must not lift the limit."""

from __future__ import annotations

import logging

from django.conf import settings

from studio.api.errors import ApiError
from studio.api.ratelimit import (
    RateLimitUnavailable,
    lock_remaining,
    lock_set,
    window_hit,
    window_refund,
)

logger = logging.getLogger(__name__)

# How long past lockouts lengthen the next one, and the longest lockout.
LOCKOUT_MEMORY_S = 24 * 3600


def login_attempt_admit(*, email: str, address: str | None) -> str:
    """Counts one login attempt and returns its key (for `login_attempt_forgive`), or refuses it:
    429 while the pair is locked out or over the limit, 503 when the counters are unreachable."""
    key = f"login:{email.strip().lower()}:{address or 'unknown'}"
    try:
        _admit(key)
    except RateLimitUnavailable:
        logger.warning("Login refused: the login rate limiter is unavailable", exc_info=True)
        raise ApiError(
            503, "rate_limiter_unavailable", "Logging in is unavailable right now; try again shortly."
        ) from None
    return key


def login_attempt_forgive(key: str) -> None:
    """The password was right: this attempt does not count towards a lockout."""
    try:
        window_refund(key, window_s=settings.LOGIN_FAILURE_WINDOW_S)
    except RateLimitUnavailable:
        logger.warning("Login attempt not taken back (rate limiter unavailable)", exc_info=True)


def _admit(key: str) -> None:
    locked_for = lock_remaining(key)
    if locked_for:
        raise _too_many(locked_for)
    window_s, limit = settings.LOGIN_FAILURE_WINDOW_S, settings.LOGIN_FAILURE_LIMIT
    attempt = window_hit(key, window_s=window_s)
    if attempt.count <= limit:
        return
    if attempt.count == limit + 1:  # the one attempt that crosses the limit starts the lockout
        strikes = window_hit(f"{key}:lockouts", window_s=LOCKOUT_MEMORY_S).count
        lock_set(key, seconds=min(window_s * 2 ** min(strikes - 1, 16), LOCKOUT_MEMORY_S))
    raise _too_many(max(attempt.retry_after, lock_remaining(key)))


def _too_many(retry_after: int) -> ApiError:
    return ApiError(429, "rate_limited", "Too many login attempts. Try again later.", retry_after=retry_after)
