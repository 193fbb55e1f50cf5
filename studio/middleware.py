"""Equivalents of the middleware of settings.MIDDLEWARE whose hooks run on the event loop, for the
chain of async views (studio/handler.py).

Django's `MiddlewareMixin` runs every hook of a middleware in async mode through `sync_to_async`
(a hop to a worker thread and back, ~0.1 ms of CPU each). The async chain serves the async views
(the deployment channels, see studio/handler.py), where these hops cost more than the view. None of
these hooks does I/O, except a session save and a message store, which still run in the request's
worker thread when the request used them. settings.MIDDLEWARE keeps Django's names, which the
deploy checks (`check --deploy`) look for, and the sync chain runs those classes.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security
from django_prometheus import middleware as prometheus


class InlineHooks:
    """In async mode: `process_request`, `process_view` and `process_response` called directly."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode and hasattr(self, "process_view"):
            # Django adapts a sync process_view with sync_to_async in async mode; a coroutine
            # function it calls as it is.
            process_view = self.process_view

            async def inline_process_view(request, view_func, view_args, view_kwargs):
                return process_view(request, view_func, view_args, view_kwargs)

            self.process_view = inline_process_view

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if not hasattr(self, "process_response"):
            return response
        if self.response_does_io(request):
            return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
        return self.process_response(request, response)

    def response_does_io(self, request) -> bool:
        return False


class PrometheusBeforeMiddleware(InlineHooks, prometheus.PrometheusBeforeMiddleware):
    pass


class PrometheusAfterMiddleware(InlineHooks, prometheus.PrometheusAfterMiddleware):
    pass


class SecurityMiddleware(InlineHooks, security.SecurityMiddleware):
    pass


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
    pass


class AuthenticationMiddleware(InlineHooks, auth.AuthenticationMiddleware):
    pass


class XFrameOptionsMiddleware(InlineHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class SessionMiddleware(InlineHooks, sessions.SessionMiddleware):
    def response_does_io(self, request) -> bool:
        session = request.session  # lazy: reading it loads nothing
        return session.accessed or session.modified


class MessageMiddleware(InlineHooks, messages.MessageMiddleware):
    def response_does_io(self, request) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


_EQUIVALENT_OF = {
    "django_prometheus.middleware.PrometheusBeforeMiddleware": PrometheusBeforeMiddleware,
    "django.middleware.security.SecurityMiddleware": SecurityMiddleware,
    "django.contrib.sessions.middleware.SessionMiddleware": SessionMiddleware,
    "django.middleware.common.CommonMiddleware": CommonMiddleware,
    "django.middleware.csrf.CsrfViewMiddleware": CsrfViewMiddleware,
    "django.contrib.auth.middleware.AuthenticationMiddleware": AuthenticationMiddleware,
    "django.contrib.messages.middleware.MessageMiddleware": MessageMiddleware,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": XFrameOptionsMiddleware,
    "django_prometheus.middleware.PrometheusAfterMiddleware": PrometheusAfterMiddleware,
}


def async_equivalents(middleware: list[str]) -> list[str]:
    """settings.MIDDLEWARE with each entry that has an equivalent here replaced by it."""
    return [
        f"{__name__}.{_EQUIVALENT_OF[path].__name__}" if path in _EQUIVALENT_OF else path
        for path in middleware
    ]
