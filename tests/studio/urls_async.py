"""The project's URLs plus async views, to test the async middleware chain (studio/handler.py)."""

from django.http import JsonResponse
from django.urls import path

from studio.urls import urlpatterns as project_urlpatterns


async def plain(request):
    return JsonResponse({"ok": True})


async def remembers(request):
    await request.session.aset("seen", True)  # a session write: saved when the response goes out
    return JsonResponse({"ok": True})


urlpatterns = [
    path("async/plain", plain),
    path("async/remembers", remembers),
    *project_urlpatterns,
]
handler404 = "studio.api.errors.not_found_view"
