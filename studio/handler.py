"""Django's ASGI handler with one thread hop for a sync view's whole request.

Django's own handler runs the middleware chain in async mode: every `MiddlewareMixin` middleware
(sessions, CSRF, security, Prometheus, ...) then runs each of its hooks through `sync_to_async`,
and the sync view and its rendering hop once more each: about 20 hops between the event loop and a
worker thread for one API request, most of the 3 ms of CPU a bare API view cost (profile in
benchmarks/README.md, "Request cost"). Here a request whose view is sync (all of the API and the
admin) runs the middleware chain in sync mode, view and rendering included, in one call on the
request's worker thread; a request whose view is async (the deployment channels) runs the async
chain on the event loop as before. The URL is resolved once, before choosing.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse
from django.urls import Resolver404, get_resolver, set_urlconf

from studio.middleware import async_equivalents


def _resolved(request):
    """The request's URL match, computed once per request (both chains ask for it)."""
    match = getattr(request, "_studio_resolver_match", None)
    if match is None or hasattr(request, "urlconf"):  # a middleware changed the URLconf: resolve anew
        if hasattr(request, "urlconf"):
            set_urlconf(request.urlconf)
        match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
        request._studio_resolver_match = match
    request.resolver_match = match
    return match


class _SyncChain(base.BaseHandler):
    """The middleware chain in sync mode, as under WSGI."""

    def resolve_request(self, request):
        return _resolved(request)


class StudioASGIHandler(ASGIHandler):
    def __init__(self):
        # Django's handler loads the async chain from settings.MIDDLEWARE in __init__: from the
        # equivalents with hooks on the event loop instead, set for that call only (at start-up,
        # before any request).
        middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = async_equivalents(middleware)
        try:
            super().__init__()
        finally:
            settings.MIDDLEWARE = middleware
        self._sync_chain = _SyncChain()
        self._sync_chain.load_middleware(is_async=False)

    def resolve_request(self, request):
        return _resolved(request)

    async def run_get_response(self, request):
        if _view_is_async(request):
            return await super().run_get_response(request)
        # thread_sensitive: the request's own worker thread (Django's ThreadSensitiveContext per
        # request), where `response.close()` later closes the same database connection.
        response = await sync_to_async(self._sync_chain.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # as Django's run_get_response does
        return response


def _view_is_async(request) -> bool:
    try:
        match = _resolved(request)
    except Resolver404:
        return False  # the 404 (or CommonMiddleware's APPEND_SLASH redirect) is sync
    return iscoroutinefunction(match.func)
