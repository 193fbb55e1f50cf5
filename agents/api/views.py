import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, renderers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from agents import services
from agents.api.filters import AgentFilterSet
from agents.api.serializers import (
    AgentCreateSerializer,
    AgentReadSerializer,
    AgentTestResultSerializer,
    AgentUpdateSerializer,
    AgentValidateSerializer,
    AgentValidationSerializer,
    AgentVersionSerializer,
    ExecuteSerializer,
)
from agents.codegen import agent_kaizen_source, source_file_name
from agents.models import Agent
from agents.runs import agent_test_run
from agents.runtime.validation import ConfigError
from agents.selectors import agent_list, agent_provider_base_url, agent_version_list
from observability.supervisor import RunWaiting
from studio.api.parsing import validated
from studio.api.viewsets import OrgScopedViewSet
from studio.ids import id_pattern

VERSION_PATTERN = r"[0-9]+\.[0-9]+\.[0-9]+"


class PythonSourceRenderer(renderers.BaseRenderer):
    """Python source as text/x-python; anything else (an error) stays JSON."""

    media_type = "text/x-python"
    format = "py"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode()


@extend_schema_view(
    list=extend_schema(
        description="The organization's agents, newest first; filter by status and agent_type, "
        "search name and description.",
        responses=AgentReadSerializer(many=True),
    ),
    retrieve=extend_schema(
        description="One agent with its config YAML and normalized config.", responses=AgentReadSerializer
    ),
)
class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Agents of the caller's organization. Viewers read, export and validate; members and above
    create, change, restore and delete."""

    queryset = Agent.objects.all()
    serializer_class = AgentReadSerializer
    filterset_class = AgentFilterSet
    lookup_value_regex = id_pattern("agent")
    action_roles = {"validate": "viewer"}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, *, organization, user):
        return agent_list(user=user)

    @extend_schema(request=AgentCreateSerializer, responses={201: AgentReadSerializer})
    def create(self, request):
        """Creates an agent at version 1.0.0; config errors are a 400 `invalid_config` with every
        error as `{path, message}` under `fields.config_yaml`."""
        agent = services.agent_create(user=request.user, **validated(AgentCreateSerializer, request.data))
        return Response(AgentReadSerializer(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentUpdateSerializer, responses=AgentReadSerializer)
    def partial_update(self, request, pk=None):
        """Changes an agent; a changed config is kept as a version (minor bump for a signature
        change, patch otherwise)."""
        data = validated(AgentUpdateSerializer, request.data)
        agent = services.agent_update(user=request.user, agent=self.get_object(), **data)
        return Response(AgentReadSerializer(agent).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Deletes an agent; 409 `agent_in_use` while an orchestration or running deployment uses it."""
        services.agent_delete(user=request.user, agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=AgentVersionSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        """The configs the agent had before, newest first."""
        page = self.paginate_queryset(agent_version_list(agent=self.get_object()))
        return self.get_paginated_response(AgentVersionSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses=AgentReadSerializer,
        parameters=[
            OpenApiParameter("version", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=VERSION_PATTERN)
        ],
    )
    @action(detail=True, methods=["post"], url_path=rf"versions/(?P<version>{VERSION_PATTERN})/restore")
    def restore(self, request, pk=None, version=None):
        """Makes an earlier version's config current again, as a new version."""
        agent = services.agent_restore_version(user=request.user, agent=self.get_object(), version=version)
        return Response(AgentReadSerializer(agent).data)

    @extend_schema(request=AgentValidateSerializer, responses=AgentValidationSerializer)
    @action(detail=False, methods=["post"])
    def validate(self, request):
        """Validates a config without saving anything: `{valid, errors: [{path, message}], config}`."""
        data = validated(AgentValidateSerializer, request.data)
        try:
            config = services.agent_config_parse(
                organization_id=request.user.organization_id,
                user=request.user,
                config_yaml=data["config_yaml"],
            )
        except ConfigError as error:
            body = {"valid": False, "errors": error.errors, "config": None}
        else:
            body = {"valid": True, "errors": [], "config": config}
        return Response(AgentValidationSerializer(body).data)

    @extend_schema(
        responses={(200, "text/x-python"): OpenApiResponse(OpenApiTypes.STR, description="Python source")}
    )
    @action(detail=True, methods=["get"], renderer_classes=[PythonSourceRenderer, renderers.JSONRenderer])
    def code(self, request, pk=None):
        """The agent as a Python module for the Kailash Kaizen SDK."""
        agent = self.get_object()
        source = agent_kaizen_source(agent, base_url=agent_provider_base_url(user=request.user, agent=agent))
        disposition = f'inline; filename="{source_file_name(agent.name)}"'
        return Response(source, headers={"Content-Disposition": disposition})

    @extend_schema(request=ExecuteSerializer, responses=AgentTestResultSerializer)
    @action(detail=True, methods=["post"], throttle_scope="agent_test")
    def test(self, request, pk=None):
        """Runs the agent once with a test input and waits for its output, usage and trace ids
        (watch it live on the WebSocket `/api/agents/{id}/stream`). Members and above."""
        inputs = validated(ExecuteSerializer, request.data)["input"]
        try:
            result = agent_test_run(user=request.user, agent=self.get_object(), inputs=inputs)
        except RunWaiting as waiting:  # for a person's approval: decided at /api/approvals/{id}
            return Response(waiting.summary(), status=202)
        return Response(AgentTestResultSerializer(result).data)
