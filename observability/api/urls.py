from django.urls import path
from rest_framework.routers import SimpleRouter

from observability.api.views import AgentUsageView, AuditLogViewSet, MetricsView, TraceViewSet, UsageView

router = SimpleRouter(trailing_slash=False)
router.register("audit", AuditLogViewSet, basename="audit")
router.register("traces", TraceViewSet, basename="trace")
urlpatterns = [
    *router.urls,
    path("metrics", MetricsView.as_view(), name="metrics-series"),
    path("usage", UsageView.as_view(), name="usage"),
    path("usage/agents/<str:agent_id>", AgentUsageView.as_view(), name="usage-agent"),
]
