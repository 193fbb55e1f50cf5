from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api.serializers import ExecuteSerializer
from observability.supervisor import RunWaiting
from orchestrations import services
from orchestrations.api.filters import OrchestrationFilterSet
from orchestrations.api.serializers import (
    ExecutionResultSerializer,
    OrchestrationCreateSerializer,
    OrchestrationReadSerializer,
    OrchestrationUpdateSerializer,
    PatternSerializer,
)
from orchestrations.models import Orchestration
from orchestrations.patterns import pattern_list
from orchestrations.runs import orchestration_execute
from studio.api.parsing import validated
from studio.api.viewsets import OrgScopedViewSet
from studio.ids import id_pattern


class OrchestrationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Orchestrations of the caller's organization. Viewers read; members create, change, run
    and delete."""

    queryset = Orchestration.objects.all()
    serializer_class = OrchestrationReadSerializer
    filterset_class = OrchestrationFilterSet
    lookup_value_regex = id_pattern("orch")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=OrchestrationCreateSerializer, responses={201: OrchestrationReadSerializer})
    def create(self, request):
        """Creates an orchestration; pattern, agent count, agents and config are validated together
        (400 `invalid_config` with every error as `{path, message}` under `fields.config_yaml`)."""
        data = validated(OrchestrationCreateSerializer, request.data)
        orchestration = services.orchestration_create(user=request.user, **data)
        return Response(OrchestrationReadSerializer(orchestration).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=OrchestrationUpdateSerializer, responses=OrchestrationReadSerializer)
    def partial_update(self, request, pk=None):
        data = validated(OrchestrationUpdateSerializer, request.data)
        orchestration = services.orchestration_update(
            user=request.user, orchestration=self.get_object(), **data
        )
        return Response(OrchestrationReadSerializer(orchestration).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Deletes an orchestration; 409 while a running deployment serves it."""
        services.orchestration_delete(user=request.user, orchestration=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ExecuteSerializer, responses=ExecutionResultSerializer)
    @action(detail=True, methods=["post"], throttle_scope="orchestration_execute")
    def execute(self, request, pk=None):
        """Runs the orchestration once and waits for its output (watch it live on the WebSocket
        `/api/orchestrations/{id}/stream`)."""
        inputs = validated(ExecuteSerializer, request.data)["input"]
        try:
            result = orchestration_execute(user=request.user, orchestration=self.get_object(), inputs=inputs)
        except RunWaiting as waiting:  # for a person's approval: decided at /api/approvals/{id}
            return Response(waiting.summary(), status=202)
        return Response(ExecutionResultSerializer(result).data)


class PatternListView(APIView):
    @extend_schema(responses=PatternSerializer(many=True))
    def get(self, request):
        """The nine orchestration patterns with their agent bounds and the role of each position."""
        return Response(PatternSerializer(pattern_list(), many=True).data)
