from rest_framework import serializers

from deployments.models import WEBHOOK_EVENTS, Webhook, WebhookDelivery
from deployments.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER
from studio.api.rendering import RenderedFields
from studio.api.secrets import NewSecretField

SECRET_HELP = (
    f"Shown this once. Verify each delivery: `{SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex>` where "
    "hex is HMAC-SHA256, keyed with this secret, of `<t>.<raw body>`; reject a t far from now. "
    f"`{EVENT_HEADER}` names the event, `{DELIVERY_HEADER}` the delivery (the same on retries)."
)


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.URLField(
        max_length=2048, help_text="https, to a public address (the rules of provider URLs)."
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WEBHOOK_EVENTS),
        min_length=1,
        max_length=len(WEBHOOK_EVENTS),
        help_text="The events to send.",
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class WebhookSerializer(RenderedFields, serializers.ModelSerializer):
    organization_id = serializers.CharField(read_only=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=WEBHOOK_EVENTS), read_only=True)
    created_by = serializers.CharField(source="created_by_id", read_only=True, allow_null=True)

    class Meta:
        model = Webhook
        fields = [
            "id",
            "organization_id",
            "url",
            "events",
            "description",
            "is_active",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class NewWebhookSerializer(WebhookSerializer):
    secret = NewSecretField(help_text=SECRET_HELP)

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookAttemptSerializer(RenderedFields, serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    duration_ms = serializers.IntegerField()


class WebhookDeliverySerializer(RenderedFields, serializers.ModelSerializer):
    webhook_id = serializers.CharField(read_only=True)
    # Described, not an enum component: a named enum would collide with the API's other `status` enums.
    status = serializers.CharField(read_only=True, help_text="pending, delivered or failed.")
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook_id",
            "event",
            "status",
            "attempts",
            "status_code",
            "response_snippet",
            "error",
            "attempt_log",
            "next_attempt_at",
            "delivered_at",
            "created_at",
            "payload",
        ]
        read_only_fields = fields


class DeliveryFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)
