"""The project's URLs plus views that crash, to test the 500 envelope."""

from django.urls import path
from rest_framework.decorators import api_view

from studio.urls import urlpatterns as project_urlpatterns


@api_view(["GET"])
def explode(request):
    raise RuntimeError("secret internals must not leak")


class LibraryError(Exception):
    """What a third-party library may raise: it happens to look like one of our coded errors."""

    status = 409
    code = "conflict"
    message = "library internals: postgres://user:hunter2@10.0.0.5/db"
    fields = {"dsn": "postgres://user:hunter2@10.0.0.5/db"}


@api_view(["GET"])
def explode_like_ours(request):
    raise LibraryError(LibraryError.message)


urlpatterns = [
    path("api/explode", explode),
    path("api/explode-like-ours", explode_like_ours),
    *project_urlpatterns,
]
handler404 = "studio.api.errors.not_found_view"
