"""The project's URLs plus one view that crashes, to test the 500 envelope."""

from django.urls import path
from rest_framework.decorators import api_view

from studio.urls import urlpatterns as project_urlpatterns


@api_view(["GET"])
def explode(request):
    raise RuntimeError("secret internals must not leak")


urlpatterns = [path("api/explode", explode), *project_urlpatterns]
handler404 = "studio.api.errors.not_found_view"
