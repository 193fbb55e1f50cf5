import django_filters
from django.db.models import Q

from orchestrations.models import Orchestration


class OrchestrationFilterSet(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", label="Name or description contains")

    class Meta:
        model = Orchestration
        fields = ["status", "pattern"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))
