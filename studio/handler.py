"""Django's ASGI handler, with the fixed cost of a request cut to what its work needs.

Measured in benchmarks/README.md, "Request cost":

- **One thread hop per sync request.** Django's own handler runs the middleware chain in async
  mode: every `MiddlewareMixin` middleware then runs each of its hooks through `sync_to_async`, and
  the `request_started` signal, the sync view, its rendering and `response.close()` hop once more
  each (about 20 hops for one API request). Here a request whose view is sync (all of the API and
  the admin) runs the signal, the whole chain in sync mode, the view and, for a response already in
  memory, its `close()` in one call on the request's worker thread. A request whose view is async
  (the deployment channels) runs an async chain on the event loop (studio/middleware.py).
- **Worker threads kept between requests.** Django gives every request a `ThreadSensitiveContext`
  of its own, i.e. a new one-thread executor, a new OS thread started and joined per request, and
  with it (database connections are thread-local) a new connection wrapper. Here a request borrows
  a kept one-thread executor (`RequestThreads`) for its context: its sync work still runs on one
  thread of its own, and the thread's connection wrapper is reused (the connection itself still
  goes back to the pool when the request finishes, as `CONN_MAX_AGE = 0` says).
- **No session machinery on stateless routes.** Paths under `settings.STATELESS_PATH_PREFIXES` (the
  API, authenticated by bearer tokens, and the deployment channels, by keys) skip the middleware of
  `settings.SESSION_MIDDLEWARE` (sessions, CSRF, the session user, messages), which only the admin
  and /metrics read.

The URL is resolved once per request, before choosing the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import Resolver404, get_resolver, set_script_prefix, set_urlconf

from studio.middleware import async_equivalents

# Idle worker threads kept for later requests; a burst beyond this many ends the extra threads.
IDLE_THREADS_KEPT = 32


class RequestThreads:
    """One-thread executors lent to requests, one each, and kept when the request ends."""

    def __init__(self, keep: int = IDLE_THREADS_KEPT):
        self._idle: list[ThreadPoolExecutor] = []
        self._keep = keep

    def take(self) -> ThreadPoolExecutor:
        try:
            return self._idle.pop()  # the most recently used: its thread and memory are warm
        except IndexError:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        if len(self._idle) < self._keep:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)  # the thread ends once idle; never block the loop

    @property
    def idle(self) -> int:
        return len(self._idle)


def _resolved(request):
    """The request's URL match, computed once per request (the handler and the chain ask for it)."""
    match = getattr(request, "_studio_resolver_match", None)
    if match is None or hasattr(request, "urlconf"):  # a middleware changed the URLconf: resolve anew
        if hasattr(request, "urlconf"):
            set_urlconf(request.urlconf)
        match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
        request._studio_resolver_match = match
    request.resolver_match = match
    return match


def _view_is_async(request) -> bool:
    try:
        match = _resolved(request)
    except Resolver404:
        return False  # the 404 (or CommonMiddleware's APPEND_SLASH redirect) is sync
    return iscoroutinefunction(match.func)


class _Chain(base.BaseHandler):
    """A middleware chain of the given middleware, in sync or async mode."""

    def __init__(self, middleware: list[str], *, is_async: bool):
        super().__init__()
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = middleware  # load_middleware reads it; set at start-up only
        try:
            self.load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = configured

    def resolve_request(self, request):
        return _resolved(request)


class StudioASGIHandler(ASGIHandler):
    def __init__(self):
        # Not ASGIHandler.__init__: the chains below replace the one it would load.
        base.BaseHandler.__init__(self)
        full = list(settings.MIDDLEWARE)
        stateless = [path for path in full if path not in settings.SESSION_MIDDLEWARE]
        self._chains = {
            (False, False): _Chain(full, is_async=False),
            (False, True): _Chain(stateless, is_async=False),
            # The async chains use equivalents whose hooks run on the event loop.
            (True, False): _Chain(async_equivalents(full), is_async=True),
            (True, True): _Chain(async_equivalents(stateless), is_async=True),
        }
        self._stateless_prefixes = tuple(settings.STATELESS_PATH_PREFIXES)
        self.threads = RequestThreads()

    def _chain(self, request, *, is_async: bool) -> _Chain:
        return self._chains[(is_async, request.path_info.startswith(self._stateless_prefixes))]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.threads.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(executor)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            request, error_response = self.create_request(scope, body_file)
            if request is not None and _view_is_async(request):
                await signals.request_started.asend(sender=self.__class__, scope=scope)
                await self._send_until_disconnect(lambda: self._respond_async(request), receive, send)
                return
            response = await sync_to_async(self._respond_sync, thread_sensitive=True)(
                scope, request, error_response
            )
            if response.streaming:  # not closed yet: its body is still to be produced
                await self._send_until_disconnect(lambda: _ready(response), receive, send)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    def _respond_sync(self, scope, request, error_response):
        """On the request's worker thread: everything Django's handler would hop there for."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        if request is None:
            response = error_response
        else:
            response = self._chain(request, is_async=False).get_response(request)
        self._finish(response)
        if not response.streaming:
            # The body is in memory: request_finished now, on this thread, which returns the
            # request's database connection before the body is sent, with no hop of its own.
            response.close()
        return response

    async def _respond_async(self, request):
        response = await self._chain(request, is_async=True).get_response_async(request)
        self._finish(response)
        return response

    def _finish(self, response) -> None:
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # as Django's run_get_response does

    async def _send_until_disconnect(self, respond, receive, send) -> None:
        """Django's ASGIHandler.handle from here on: the response is made and sent while a task
        listens for the client's disconnect, which cancels it; then it is closed."""

        async def process():
            response = await respond()
            with contextlib.suppress(asyncio.CancelledError):  # the client left during the send
                await self.send_response(response, send)
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await sync_to_async(response.close, thread_sensitive=True)()


async def _ready(response):
    return response
