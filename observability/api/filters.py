import django_filters

from observability.models import AuditLog


class AuditLogFilterSet(django_filters.FilterSet):
    model_name = django_filters.CharFilter()
    operation_type = django_filters.CharFilter()
    user_id = django_filters.CharFilter(field_name="user_id")

    class Meta:
        model = AuditLog
        fields = ["model_name", "operation_type", "user_id"]
