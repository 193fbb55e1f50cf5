from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments import services
from deployments.api.filters import DeploymentFilterSet
from deployments.api.serializers import (
    DeploymentDetailSerializer,
    DeploymentKeySerializer,
    DeploymentReadSerializer,
    DeployResultSerializer,
    DeploySerializer,
    NewKeySerializer,
)
from deployments.models import Deployment
from deployments.selectors import deployment_keys, deployment_list, deployment_reach, deployment_usage
from studio.api.parsing import validated
from studio.api.permissions import RolePermission
from studio.api.viewsets import OrgScopedViewSet
from studio.ids import id_pattern

KEY_ID_PATTERN = id_pattern("dkey")


class DeployView(APIView):
    """`POST /api/deploy`: admins and owners."""

    permission_classes = [RolePermission]
    write_role = "admin"

    @extend_schema(request=DeploySerializer, responses={201: DeployResultSerializer}, tags=["deployments"])
    def post(self, request):
        """Deploys an agent or an orchestration, pinned to its current config: callable at once over
        HTTP (`api_url`), MCP (`mcp_url`, `mcp_command`) and the CLI (`cli_command`) with `api_key`,
        which is shown this once. Only the channels it serves (`channels`) appear. A taken name is a
        409 `name_taken`; without a name one is derived from the target's name."""
        data = validated(DeploySerializer, request.data)
        deployment, secret = services.deployment_create(user=request.user, **data)
        body = {
            "deployment_id": deployment.pk,
            "name": deployment.name,
            "channels": deployment.channels,
            **deployment_reach(deployment, key=secret),
            "api_key": secret,
        }
        return Response(DeployResultSerializer(body).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(description="The organization's deployments, newest first; filter by status."),
    retrieve=extend_schema(
        description="One deployment with its keys (prefixes only), input and output schemas, and "
        "usage so far from the ledger.",
        responses=DeploymentDetailSerializer,
    ),
)
@extend_schema(tags=["deployments"])
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Deployments of the caller's organization. Viewers read; admins and owners stop, start,
    redeploy and manage keys."""

    queryset = Deployment.objects.all()
    serializer_class = DeploymentReadSerializer
    filterset_class = DeploymentFilterSet
    lookup_value_regex = id_pattern("deploy")
    write_role = "admin"
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self, *, organization, user):
        queryset = deployment_list(user=user)
        return queryset if self.action == "list" else queryset.defer(None)

    def retrieve(self, request, pk=None):
        deployment = self.get_object()
        return Response(self._detail(deployment))

    @staticmethod
    def _detail(deployment):
        context = {
            "keys": list(deployment_keys(deployment=deployment)),
            "usage": deployment_usage(deployment=deployment),
        }
        return DeploymentDetailSerializer(deployment, context=context).data

    @extend_schema(responses={200: DeploymentDetailSerializer})
    def destroy(self, request, pk=None):
        """Stops the deployment: every channel answers 404 for it until it is started again. Its
        keys, runs and usage are kept."""
        deployment = services.deployment_stop(user=request.user, deployment=self.get_object())
        return Response(self._detail(deployment))

    @extend_schema(request=None, responses=DeploymentDetailSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Starts a stopped deployment again (same name, keys and pinned config)."""
        deployment = services.deployment_start(user=request.user, deployment=self.get_object())
        return Response(self._detail(deployment))

    @extend_schema(request=None, responses=DeploymentDetailSerializer)
    @action(detail=True, methods=["post"])
    def redeploy(self, request, pk=None):
        """Pins the deployment to the current config of its agent or orchestration."""
        deployment = services.deployment_redeploy(user=request.user, deployment=self.get_object())
        return Response(self._detail(deployment))

    @extend_schema(request=None, responses={201: NewKeySerializer})
    @action(detail=True, methods=["post"])
    def keys(self, request, pk=None):
        """A new key (shown this once); the other keys keep working until they are revoked."""
        key, secret = services.deployment_key_create(user=request.user, deployment=self.get_object())
        return Response(
            NewKeySerializer(key, context={"secret": secret}).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        request=None,
        responses=DeploymentKeySerializer,
        parameters=[OpenApiParameter("key_id", str, OpenApiParameter.PATH, pattern=KEY_ID_PATTERN)],
    )
    @action(detail=True, methods=["delete"], url_path=rf"keys/(?P<key_id>{KEY_ID_PATTERN})")
    def revoke_key(self, request, pk=None, key_id=None):
        """Revokes a key: calls with it are refused (401) at once."""
        key = services.deployment_key_revoke(user=request.user, deployment=self.get_object(), key_id=key_id)
        return Response(DeploymentKeySerializer(key).data)
