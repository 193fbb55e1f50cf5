"""The studio's URLs plus the benchmark's bare async view (see bench_settings.py)."""

from django.http import JsonResponse
from django.urls import path

from studio.urls import handler404, handler500  # noqa: F401
from studio.urls import urlpatterns as studio_urlpatterns


async def bare(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [path("bench/bare", bare), *studio_urlpatterns]
