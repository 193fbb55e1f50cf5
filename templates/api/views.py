from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from studio.api.parsing import validated
from studio.api.viewsets import OrgScopedViewSet
from studio.ids import id_pattern
from templates import services
from templates.api.filters import AgentTemplateFilterSet, OrchestrationTemplateFilterSet
from templates.api.serializers import (
    AgentTemplateCreateSerializer,
    AgentTemplateReadSerializer,
    AgentTemplateUseSerializer,
    OrchestrationTemplateReadSerializer,
    OrchestrationTemplateUseSerializer,
    TemplateUseSerializer,
)
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.selectors import agent_template_list, agent_templates_by_id, orchestration_template_list


@extend_schema_view(
    list=extend_schema(
        description="The official agent templates and your organization's own, official first; "
        "filter by category, agent_type and is_official, search name and description."
    ),
    retrieve=extend_schema(description="One agent template with its config YAML and normalized config."),
)
class AgentTemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Agent templates: the official ones and the organization's own (another organization's are a
    404). Viewers read; members use them and save agents as templates."""

    queryset = AgentTemplate.objects.all()
    serializer_class = AgentTemplateReadSerializer
    filterset_class = AgentTemplateFilterSet
    lookup_value_regex = id_pattern("tmpl")
    http_method_names = ["get", "post", "head", "options"]

    def scoped_queryset(self, *, organization, user):
        return agent_template_list(user=user)

    @extend_schema(request=AgentTemplateCreateSerializer, responses={201: AgentTemplateReadSerializer})
    def create(self, request):
        """Saves one of your organization's agents as a template only your organization sees."""
        data = validated(AgentTemplateCreateSerializer, request.data)
        template = services.agent_template_create(user=request.user, **data)
        return Response(AgentTemplateReadSerializer(template).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TemplateUseSerializer, responses={201: AgentTemplateUseSerializer})
    @action(detail=True, methods=["post"])
    def use(self, request, pk=None):
        """Creates an agent in your organization from the template. Its provider is your
        organization's config of the template's provider kind, or `mock` when you have none
        (`provider.fallback`, scripted by the template's `mock_responses`). Each MCP server slot
        the template lists is given one of your servers in `mcp_servers`; a missing, unknown or
        unfit one is a 400 at `mcp_servers.<slot>`."""
        data = validated(TemplateUseSerializer, request.data)
        made = services.agent_template_use(user=request.user, template=self.get_object(), **data)
        return Response(AgentTemplateUseSerializer(made).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        description="The official orchestration templates and your organization's own, official "
        "first; filter by pattern and is_official, search name and description."
    ),
    retrieve=extend_schema(description="One orchestration template with the agent template of each role."),
)
class OrchestrationTemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Orchestration templates: the official ones and the organization's own. Viewers read; members
    use them."""

    queryset = OrchestrationTemplate.objects.all()
    serializer_class = OrchestrationTemplateReadSerializer
    filterset_class = OrchestrationTemplateFilterSet
    lookup_value_regex = id_pattern("tmpl")
    http_method_names = ["get", "post", "head", "options"]

    def scoped_queryset(self, *, organization, user):
        return orchestration_template_list(user=user)

    def get_serializer(self, *args, **kwargs):
        # The agent templates (names, MCP slots) of every row shown, in one query.
        rows = args[0] if args else []
        rows = rows if isinstance(rows, list | tuple) else [rows]
        ids = [template_id for row in rows for template_id in row.agent_template_ids]
        found = agent_templates_by_id(user=self.request.user, template_ids=ids)
        kwargs["context"] = {**self.get_serializer_context(), "agent_templates": found}
        return self.get_serializer_class()(*args, **kwargs)

    @extend_schema(request=TemplateUseSerializer, responses={201: OrchestrationTemplateUseSerializer})
    @action(detail=True, methods=["post"])
    def use(self, request, pk=None):
        """Creates the orchestration in your organization with one new agent per position, each from
        the agent template of that position's role; providers and MCP server slots as for agent
        templates (`mcp_servers` fills the slots of all its agents)."""
        data = validated(TemplateUseSerializer, request.data)
        made = services.orchestration_template_use(user=request.user, template=self.get_object(), **data)
        return Response(OrchestrationTemplateUseSerializer(made).data, status=status.HTTP_201_CREATED)
