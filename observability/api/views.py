from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from observability import metrics, series, sql, traces, usage  # noqa: F401  metrics: registered for /metrics on import
from observability.api.filters import AuditLogFilterSet, TraceFilterSet
from observability.api.serializers import (
    AgentUsageSerializer,
    AuditLogSerializer,
    MetricSeriesSerializer,
    TraceDetailSerializer,
    TraceSerializer,
    UsageSerializer,
)
from observability.models import AuditLog, Run
from studio.api.errors import ApiError
from studio.api.permissions import RolePermission
from studio.api.viewsets import OrgScopedViewSet


def choice_param(request, name: str, choices, *, default: str | None = None) -> str:
    """A query parameter that must be one of `choices`; the 400 lists the valid values."""
    value = request.query_params.get(name) or default
    if value not in choices:
        valid = ", ".join(choices)
        message = (
            f"Unknown {name} '{value}'; valid values: {valid}." if value else f"{name} is required ({valid})."
        )
        raise ApiError(400, "validation_error", message, fields={name: [message]})
    return value


def _choice_parameter(name: str, choices, default: str | None = None) -> OpenApiParameter:
    return OpenApiParameter(name, str, enum=list(choices), default=default, required=default is None)


class AuditLogViewSet(mixins.ListModelMixin, OrgScopedViewSet):
    """The organization's audit trail, newest first (admin+)."""

    queryset = AuditLog.objects.all()
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilterSet
    read_role = "admin"


class TraceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Runs as traces: newest first with their totals; one with its span tree."""

    queryset = Run.objects.all()
    serializer_class = TraceSerializer
    filterset_class = TraceFilterSet

    def scoped_queryset(self, *, organization, user):
        return traces.trace_list(organization_id=organization.pk)

    @extend_schema(responses=TraceDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        found = traces.trace_get(organization_id=request.user.organization_id, run_id=kwargs["pk"])
        if found is None:
            raise NotFound()
        run, run.span_roots = found
        return Response(TraceDetailSerializer(run).data)


class MetricsView(APIView):
    """A metric of the organization's runs as a time series; empty buckets are 0."""

    permission_classes = [RolePermission]

    @extend_schema(
        parameters=[
            _choice_parameter("metric_name", series.METRICS),
            _choice_parameter("period", series.METRIC_PERIODS, "24h"),
        ],
        responses=MetricSeriesSerializer,
    )
    def get(self, request):
        metric = choice_param(request, "metric_name", series.METRICS)
        period = choice_param(request, "period", series.METRIC_PERIODS, default="24h")
        return Response(
            series.metric_series(organization_id=request.user.organization_id, metric=metric, period=period)
        )


class UsageView(APIView):
    """The organization's usage in a calendar period (UTC): totals, per agent and per day."""

    permission_classes = [RolePermission]

    @extend_schema(parameters=[_choice_parameter("period", sql.PERIODS, "month")], responses=UsageSerializer)
    def get(self, request):
        period = choice_param(request, "period", sql.PERIODS, default="month")
        summary = usage.usage_summary(organization_id=request.user.organization_id, period=period)
        return Response(UsageSerializer(summary).data)


class AgentUsageView(APIView):
    """One agent's usage in a calendar period (UTC): totals and per day."""

    permission_classes = [RolePermission]

    @extend_schema(
        parameters=[_choice_parameter("period", sql.PERIODS, "month")], responses=AgentUsageSerializer
    )
    def get(self, request, agent_id: str):
        period = choice_param(request, "period", sql.PERIODS, default="month")
        organization_id = request.user.organization_id
        known, name = usage.usage_agent_lookup(organization_id=organization_id, agent_id=agent_id)
        if not known:
            raise NotFound()
        summary = usage.usage_for_agent(
            organization_id=organization_id, agent_id=agent_id, name=name, period=period
        )
        return Response(AgentUsageSerializer(summary).data)
