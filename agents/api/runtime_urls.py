from django.urls import path

from agents.api.runtime import RuntimeAgentViewSet, RuntimeMetricsView, RuntimeStatusView

urlpatterns = [
    path("runtime/status", RuntimeStatusView.as_view(), name="runtime-status"),
    path("runtime/agents", RuntimeAgentViewSet.as_view({"get": "list"}), name="runtime-agents"),
    path("runtime/metrics", RuntimeMetricsView.as_view(), name="runtime-metrics"),
]
