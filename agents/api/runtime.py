"""Runtime monitoring endpoints: the organization's runs in flight and the health of its agents
(health rule in agents.runtime_status)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import mixins, renderers, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from agents.runtime_status import (
    HEALTH_STATES,
    runtime_agent_list,
    runtime_agent_rows,
    runtime_metrics,
    runtime_status,
)
from studio.api.permissions import RolePermission
from studio.api.rendering import RenderedFields
from studio.api.viewsets import OrgScopedViewSet


class RuntimeStatusSerializer(serializers.Serializer):
    active_runs = serializers.IntegerField(help_text="Runs executing now.")
    pending_tasks = serializers.IntegerField(help_text="Runs queued, not started yet.")
    active_agents = serializers.IntegerField(help_text="Agents with a run in the last 24 hours.")
    healthy_count = serializers.IntegerField()
    total_agents = serializers.IntegerField()
    agents_by_health = serializers.DictField(child=serializers.IntegerField())


class RuntimeAgentSerializer(RenderedFields, serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField(help_text=f"Health: {', '.join(HEALTH_STATES)} (see the health rule).")
    agent_status = serializers.CharField(help_text="The agent's lifecycle status: draft, active, deprecated.")
    last_heartbeat = serializers.DateTimeField(
        allow_null=True, help_text="Last sign of life of its latest run."
    )
    circuit_breaker_state = serializers.CharField(help_text="closed, half_open or open.")
    budget_used = serializers.DecimalField(
        max_digits=20, decimal_places=10, help_text="USD spent this month."
    )
    budget_limit = serializers.DecimalField(max_digits=20, decimal_places=10, allow_null=True)
    success_rate_24h = serializers.FloatField(allow_null=True)
    p95_latency_ms_24h = serializers.FloatField(allow_null=True)
    runs_24h = serializers.IntegerField()
    failures_24h = serializers.IntegerField()


class RuntimeStatusView(APIView):
    """Runs in flight and queued, and how many agents are active and healthy."""

    permission_classes = [RolePermission]

    @extend_schema(responses=RuntimeStatusSerializer, tags=["runtime"])
    def get(self, request):
        status = runtime_status(organization_id=request.user.organization_id)
        return Response(RuntimeStatusSerializer(status).data)


class RuntimeAgentViewSet(mixins.ListModelMixin, OrgScopedViewSet):
    """Every agent of the organization with its health, breaker, budget and last 24 hours."""

    queryset = Agent.objects.all()
    serializer_class = RuntimeAgentSerializer

    def scoped_queryset(self, *, organization, user):
        return runtime_agent_list(organization_id=organization.pk)

    @extend_schema(tags=["runtime"])
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        rows = runtime_agent_rows(organization_id=request.user.organization_id, agents=page)
        return self.get_paginated_response(RuntimeAgentSerializer(rows, many=True).data)


class PrometheusTextRenderer(renderers.BaseRenderer):
    """Lets scrapers ask for text; errors still render as the JSON envelope's text."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes | str) else json.dumps(data)


class RuntimeMetricsView(APIView):
    """The organization's runtime numbers in the Prometheus text format, built from its records."""

    permission_classes = [RolePermission]
    renderer_classes = [renderers.JSONRenderer, PrometheusTextRenderer]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR}, tags=["runtime"])
    def get(self, request):
        body = runtime_metrics(organization_id=request.user.organization_id)
        return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
