from django.urls import path

from agents.consumers import AgentStreamConsumer
from observability.consumers import RunStreamConsumer
from orchestrations.consumers import OrchestrationStreamConsumer
from studio.consumers import PingConsumer

websocket_urlpatterns = [
    path("api/ws/ping", PingConsumer.as_asgi()),
    path("api/runs/<str:run_id>/stream", RunStreamConsumer.as_asgi()),
    path("api/agents/<str:agent_id>/stream", AgentStreamConsumer.as_asgi()),
    path("api/orchestrations/<str:orchestration_id>/stream", OrchestrationStreamConsumer.as_asgi()),
]
