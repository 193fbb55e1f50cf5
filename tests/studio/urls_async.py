"""The project's URLs plus async views, to test the async middleware chain (studio/handler.py),
and a sync view that records the thread and connection it used."""

import threading

from django.db import connections
from django.http import JsonResponse
from django.urls import path

from studio.urls import urlpatterns as project_urlpatterns


async def plain(request):
    return JsonResponse({"ok": True})


async def remembers(request):
    await request.session.aset("seen", True)  # a session write: saved when the response goes out
    return JsonResponse({"ok": True})


database_uses: list = []  # (thread, connection wrapper) of each call of `uses_database`


def uses_database(request):
    wrapper = connections["default"]  # this thread's
    wrapper.ensure_connection()
    database_uses.append((threading.get_ident(), wrapper))
    return JsonResponse({"ok": True})


urlpatterns = [
    path("sync/database", uses_database),
    path("async/plain", plain),
    path("async/remembers", remembers),
    *project_urlpatterns,
]
handler404 = "studio.api.errors.not_found_view"
