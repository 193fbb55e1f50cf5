from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from providers import services
from providers.api.filters import ProviderConfigFilterSet
from providers.api.serializers import (
    ProviderConfigCreateSerializer,
    ProviderConfigSerializer,
    ProviderConfigUpdateSerializer,
    ProviderUsageSerializer,
    ProviderValidationSerializer,
    UsageQuerySerializer,
)
from providers.models import APIProviderConfig
from providers.selectors import provider_config_list, provider_usage
from studio.api.parsing import validated
from studio.api.viewsets import OrgScopedViewSet


@extend_schema_view(
    list=extend_schema(summary="The organization-wide provider configs and the caller's personal ones"),
    retrieve=extend_schema(summary="One provider config"),
)
class ProviderConfigViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """LLM provider accounts. Everyone reads; members manage their personal configs, admins the
    organization-wide ones. The key is write-only: responses show `key_hint`."""

    queryset = APIProviderConfig.objects.all()
    serializer_class = ProviderConfigSerializer
    filterset_class = ProviderConfigFilterSet
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, *, organization, user):
        return provider_config_list(user=user)

    @property
    def throttle_scope(self) -> str | None:
        # These call the provider with the key (creating and re-keying validate it first).
        return "provider_validate" if self.action in ("create", "partial_update", "validate") else None

    def _respond(self, config: APIProviderConfig, status_code: int = status.HTTP_200_OK) -> Response:
        config = self.get_queryset().get(pk=config.pk)  # with this month's spend
        return Response(ProviderConfigSerializer(config).data, status=status_code)

    @extend_schema(
        summary="Store a provider config, after validating its key with the provider",
        request=ProviderConfigCreateSerializer,
        responses={201: ProviderConfigSerializer},
    )
    def create(self, request):
        data = validated(ProviderConfigCreateSerializer, request.data)
        config = services.provider_config_create(actor=request.user, **data)
        return self._respond(config, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a provider config; a new key or base URL is validated again",
        request=ProviderConfigUpdateSerializer,
        responses=ProviderConfigSerializer,
    )
    def partial_update(self, request, pk=None):
        data = validated(ProviderConfigUpdateSerializer, request.data)
        config = services.provider_config_update(actor=request.user, config=self.get_object(), **data)
        return self._respond(config)

    @extend_schema(summary="Delete a provider config (runs keep its id)", responses={204: None})
    def destroy(self, request, pk=None):
        services.provider_config_delete(actor=request.user, config=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Check the stored key with the provider and list its models",
        request=None,
        responses=ProviderValidationSerializer,
    )
    @action(detail=True, methods=["post"])
    def validate(self, request, pk=None):
        result = services.provider_config_validate(config=self.get_object())
        return Response(ProviderValidationSerializer(result).data)

    @extend_schema(
        summary="Usage of the config in a calendar period, from its LLM calls",
        parameters=[UsageQuerySerializer],
        responses=ProviderUsageSerializer,
    )
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        usage = provider_usage(
            config=self.get_object(), **validated(UsageQuerySerializer, request.query_params)
        )
        return Response(ProviderUsageSerializer(usage).data)
