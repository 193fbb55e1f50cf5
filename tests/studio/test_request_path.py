"""The ASGI request path (studio/handler.py, studio/middleware.py): a sync view's request crosses
from the event loop to a worker thread once, an async view's not at all for its middleware, and
every middleware still does its work (security headers, sessions, metrics)."""

from __future__ import annotations

import pytest
from asgiref.sync import SyncToAsync
from django.contrib.sessions.models import Session
from prometheus_client import REGISTRY

from studio.handler import StudioASGIHandler
from tests.asgi_requests import asgi_get
from tests.studio import urls_async

# For an async view, Django's request_started signal and response.close() run sync receivers: one
# hop each.
SIGNAL_HOPS = 2


@pytest.fixture
def thread_hops(monkeypatch):
    """How many sync_to_async calls (event loop -> worker thread) were made."""
    calls = []
    call = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return calls


def _requests_total(view: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "django_http_responses_total_by_status_view_method_total",
            {"status": "200", "view": view, "method": "GET"},
        )
        or 0.0
    )


@pytest.mark.django_db(transaction=True)
def test_a_sync_api_view_runs_its_whole_middleware_chain_in_one_thread_hop(thread_hops):
    app = StudioASGIHandler()
    before = _requests_total("liveness")
    thread_hops.clear()

    status, headers, body = asgi_get(app, "/api/health/live")

    assert status == 200 and b'"status": "ok"' in body.replace(b'":"', b'": "')
    # Django's own handler makes about 20 (each middleware hook, the view, its rendering, the
    # request_started signal, response.close()); here the signals run in the same hop.
    assert len(thread_hops) == 1, thread_hops
    assert headers[b"x-frame-options"] == [b"DENY"] and headers[b"x-content-type-options"] == [b"nosniff"]
    assert _requests_total("liveness") == before + 1  # django-prometheus still counted it


@pytest.mark.urls("tests.studio.urls_async")
@pytest.mark.django_db(transaction=True)
def test_an_async_view_runs_its_middleware_on_the_event_loop(thread_hops):
    app = StudioASGIHandler()
    before = _requests_total("tests.studio.urls_async.plain")
    thread_hops.clear()

    status, headers, _ = asgi_get(app, "/async/plain")

    assert status == 200
    assert len(thread_hops) == SIGNAL_HOPS, thread_hops
    assert headers[b"x-frame-options"] == [b"DENY"] and headers[b"x-content-type-options"] == [b"nosniff"]
    assert _requests_total("tests.studio.urls_async.plain") == before + 1


@pytest.mark.urls("tests.studio.urls_async")
@pytest.mark.django_db(transaction=True)
def test_an_async_view_that_writes_the_session_has_it_saved_in_a_worker_thread(thread_hops):
    app = StudioASGIHandler()

    status, headers, _ = asgi_get(app, "/async/remembers")

    assert status == 200
    cookie = next(value for value in headers[b"set-cookie"] if value.startswith(b"sessionid="))
    key = cookie.split(b";")[0].split(b"=", 1)[1].decode()
    assert Session.objects.get(session_key=key).get_decoded() == {"seen": True}


@pytest.mark.urls("tests.studio.urls_async")
@pytest.mark.django_db(transaction=True)
def test_requests_reuse_their_worker_thread_and_return_its_database_connection():
    """Django makes (and ends) a thread per request; here the next request gets the same one, with
    the same connection wrapper, and the connection is closed (back to the pool) when it ends."""
    app = StudioASGIHandler()
    urls_async.database_uses.clear()

    for _ in range(3):
        assert asgi_get(app, "/sync/database")[0] == 200

    assert len({thread for thread, _ in urls_async.database_uses}) == 1
    assert len({id(wrapper) for _, wrapper in urls_async.database_uses}) == 1
    assert all(wrapper.connection is None for _, wrapper in urls_async.database_uses)
    assert app.threads.idle == 1


@pytest.mark.django_db(transaction=True)
def test_stateless_routes_skip_the_session_middleware_the_admin_keeps():
    app = StudioASGIHandler()

    _, api, _ = asgi_get(app, "/api/health/live")
    _, admin, _ = asgi_get(app, "/admin/login/")

    # The API neither varies on nor sets cookies; the other middleware still run.
    assert b"set-cookie" not in api and b"vary" not in api
    assert api[b"x-frame-options"] == [b"DENY"] and api[b"x-content-type-options"] == [b"nosniff"]
    assert any(cookie.startswith(b"csrftoken=") for cookie in admin[b"set-cookie"])
