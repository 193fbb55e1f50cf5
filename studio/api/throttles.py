"""DRF throttles of the expensive endpoints (sign-up, login, runs, provider checks).

A view names its scope (`throttle_scope = "agent_test"`); the scope's rate comes from
`REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` (e.g. `"120/min"`). Requests are counted in the fixed
windows of `studio.api.ratelimit`: an atomic `incr` in the shared cache (Redis in production), so
every server process counts against the same limit and concurrent requests cannot slip past it."""

from __future__ import annotations

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from studio.api.ratelimit import RateLimitUnavailable, window_hit
from studio.audit import client_address

logger = logging.getLogger(__name__)


class ScopedWindowThrottle(ScopedRateThrottle):
    """The view's `throttle_scope` limited per organization (per client address before login).
    Over the rate: 429 `rate_limited` with `Retry-After` (seconds until the window ends). The
    cache unreachable: the request is let through, so the REST API keeps working without Redis."""

    def get_rate(self) -> str | None:
        # Read per request, not once at import: overridden settings (tests, reloads) apply.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str:
        user = request.user
        if user is not None and user.is_authenticated and getattr(user, "organization_id", None):
            ident = f"org:{user.organization_id}"
        else:
            ident = f"ip:{client_address(request) or 'unknown'}"
        return f"throttle:{self.scope}:{ident}"

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            hit = window_hit(self.get_cache_key(request, view), window_s=self.duration)
        except RateLimitUnavailable:
            logger.warning("Throttle %s unavailable; request let through", self.scope, exc_info=True)
            return True
        if hit.count <= self.num_requests:
            return True
        self.retry_after = hit.retry_after
        return False

    def wait(self) -> float:
        return self.retry_after
