import django_filters

from providers.models import APIProviderConfig


class ProviderConfigFilterSet(django_filters.FilterSet):
    class Meta:
        model = APIProviderConfig
        fields = ["provider", "is_active"]
