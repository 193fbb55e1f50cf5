import django_filters

from agents.models import Agent
from orchestrations.models import Orchestration
from templates.models import AgentTemplate, OrchestrationTemplate
from templates.selectors import template_search_q


class AgentTemplateFilterSet(django_filters.FilterSet):
    category = django_filters.ChoiceFilter(choices=AgentTemplate.Category.choices)
    agent_type = django_filters.ChoiceFilter(choices=Agent.AgentType.choices)
    is_official = django_filters.BooleanFilter(label="Official templates only (true) or your own (false)")
    search = django_filters.CharFilter(
        method="filter_search", max_length=200, label="Search name and description"
    )

    class Meta:
        model = AgentTemplate
        fields = ["category", "agent_type", "is_official", "search"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(template_search_q(value))


class OrchestrationTemplateFilterSet(django_filters.FilterSet):
    pattern = django_filters.ChoiceFilter(choices=Orchestration.Pattern.choices)
    is_official = django_filters.BooleanFilter(label="Official templates only (true) or your own (false)")
    search = django_filters.CharFilter(
        method="filter_search", max_length=200, label="Search name and description"
    )

    class Meta:
        model = OrchestrationTemplate
        fields = ["pattern", "is_official", "search"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(template_search_q(value))
