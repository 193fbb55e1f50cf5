from rest_framework import serializers

from observability.sql import PERIODS
from providers.llm import pricing
from providers.models import APIProviderConfig
from studio.api.rendering import RenderedFields
from studio.api.secrets import SecretField, SecretHintField

MONEY_DIGITS = {"max_digits": 14, "decimal_places": 6}


class ProviderConfigSerializer(RenderedFields, serializers.ModelSerializer):
    """A provider config as every response shows it: the key only as its hint."""

    organization_id = serializers.CharField(read_only=True)
    user_id = serializers.CharField(
        read_only=True, allow_null=True, help_text="The owner of a personal config; null = organization-wide."
    )
    key_hint = SecretHintField()
    created_by_id = serializers.CharField(read_only=True, allow_null=True)
    current_spend_usd = serializers.DecimalField(
        **MONEY_DIGITS, read_only=True, help_text="Spent through this config this calendar month (UTC)."
    )

    class Meta:
        model = APIProviderConfig
        fields = [
            "id",
            "organization_id",
            "user_id",
            "provider",
            "name",
            "key_hint",
            "api_base_url",
            "api_version",
            "default_model",
            "pricing_overrides",
            "budget_limit_usd",
            "current_spend_usd",
            "is_default",
            "is_active",
            "created_by_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PricingOverridesField(serializers.JSONField):
    """`{model: {input, output, cached_input?}}` in USD per million tokens."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object of model prices.")
        for model, price in value.items():
            try:
                pricing.find_price(model, {model: price})
            except ValueError as error:
                raise serializers.ValidationError(f"{model}: {error}") from None
        return value


class ProviderConfigUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    api_key = SecretField(required=False, max_length=500)
    api_base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    api_version = serializers.CharField(max_length=40, required=False, allow_blank=True)
    default_model = serializers.CharField(max_length=120, required=False, allow_blank=True)
    budget_limit_usd = serializers.DecimalField(**MONEY_DIGITS, min_value=0, required=False, allow_null=True)
    pricing_overrides = PricingOverridesField(required=False)
    is_default = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)

    def get_fields(self):
        # Added here: a class attribute named `validate` would hide Serializer.validate().
        validate = serializers.BooleanField(
            default=True,
            help_text="Check the key with the provider first (false: admins storing a key offline).",
        )
        return {**super().get_fields(), "validate": validate}


class ProviderConfigCreateSerializer(ProviderConfigUpdateSerializer):
    provider = serializers.ChoiceField(choices=APIProviderConfig.Kind.choices)
    name = serializers.CharField(max_length=120)
    api_key = SecretField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Required except for mock, ollama and openai_compatible.",
    )
    personal = serializers.BooleanField(
        default=False, help_text="A config of the caller alone (members may only create these)."
    )


class ProviderValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    models = serializers.ListField(child=serializers.CharField())
    latency_ms = serializers.FloatField()
    error = serializers.CharField(allow_null=True)


class UsageQuerySerializer(serializers.Serializer):
    period = serializers.ChoiceField(
        choices=PERIODS, default="month", help_text="The current calendar day, ISO week, month or year (UTC)."
    )


class UsageTotalsSerializer(serializers.Serializer):
    executions = serializers.IntegerField(
        help_text="LLM calls made through the config, failed ones included."
    )
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(**MONEY_DIGITS)


class DailyUsageSerializer(UsageTotalsSerializer):
    date = serializers.DateField()


class ModelUsageSerializer(UsageTotalsSerializer):
    model = serializers.CharField()


class ProviderUsageSerializer(UsageTotalsSerializer):
    period = serializers.ChoiceField(choices=PERIODS)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    budget_limit_usd = serializers.DecimalField(**MONEY_DIGITS, allow_null=True)
    current_spend_usd = serializers.DecimalField(**MONEY_DIGITS, help_text="This calendar month (UTC).")
    by_day = DailyUsageSerializer(many=True)
    by_model = ModelUsageSerializer(many=True)
