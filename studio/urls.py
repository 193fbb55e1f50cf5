from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from studio import views

api_patterns = [
    path("", include("accounts.api.urls")),
    path("", include("observability.api.urls")),
    path("", include("providers.api.urls")),
    path("", include("agents.api.urls")),
    path("", include("agents.api.runtime_urls")),
    path("tools/", include("agents.api.tools_urls")),
    path("", include("orchestrations.api.urls")),
    path("", include("deployments.api.urls")),
    path("", include("templates.api.urls")),
    path("health", views.health, name="health"),
    path("health/live", views.liveness, name="liveness"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(
        "redoc",
        SpectacularRedocView.as_view(url_name="schema", template_name="studio/redoc.html"),
        name="redoc",
    ),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
    path("metrics", views.metrics, name="metrics"),
    path("", include("deployments.serving_urls")),
]

handler404 = "studio.api.errors.not_found_view"
handler500 = "studio.api.errors.server_error_view"
