from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from deployments import webhooks
from deployments.api.webhook_serializers import (
    DeliveryFilterSerializer,
    NewWebhookSerializer,
    WebhookCreateSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
)
from deployments.models import Webhook, WebhookDelivery
from studio.api.parsing import validated
from studio.api.viewsets import OrgScopedViewSet
from studio.ids import id_pattern


@extend_schema_view(
    list=extend_schema(description="The organization's webhooks, newest first (never their secrets)."),
    retrieve=extend_schema(description="One webhook (never its secret)."),
)
@extend_schema(tags=["webhooks"])
class WebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Outbound webhooks of the caller's organization: admins and owners only, reads included
    (a hook URL is often a credential itself, and deliveries carry run outputs)."""

    queryset = Webhook.objects.all()
    serializer_class = WebhookSerializer
    lookup_value_regex = id_pattern("whk")
    read_role = "admin"
    write_role = "admin"
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self, *, organization, user):
        return webhooks.webhook_list(organization=organization)

    @extend_schema(request=WebhookCreateSerializer, responses={201: NewWebhookSerializer})
    def create(self, request):
        """Subscribes a URL to events. The response holds the signing secret, this once; the URL
        must be https to a public address (400 `unsafe_url` otherwise)."""
        data = validated(WebhookCreateSerializer, request.data)
        webhook, secret = webhooks.webhook_create(user=request.user, **data)
        body = NewWebhookSerializer(webhook, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        """Deletes the webhook and its deliveries; pending ones are not sent."""
        webhooks.webhook_delete(user=request.user, webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=WebhookSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        """Turns a webhook disabled after repeated failure back on."""
        webhook = webhooks.webhook_enable(user=request.user, webhook=self.get_object())
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(
        responses=WebhookDeliverySerializer(many=True),
        filters=False,
        parameters=[
            OpenApiParameter("status", str, enum=[choice for choice, _ in WebhookDelivery.Status.choices])
        ],
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The webhook's deliveries, newest first, each with its attempts (status code, error,
        duration), the last answer's first characters and the body that was signed."""
        wanted = validated(DeliveryFilterSerializer, request.query_params)
        deliveries = webhooks.webhook_deliveries(webhook=self.get_object(), status=wanted.get("status"))
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
