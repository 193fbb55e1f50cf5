import django_filters

from agents.models import Agent
from agents.selectors import agent_search_q


class AgentFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Agent.Status.choices)
    agent_type = django_filters.ChoiceFilter(choices=Agent.AgentType.choices)
    search = django_filters.CharFilter(
        method="filter_search", max_length=200, label="Search name and description"
    )

    class Meta:
        model = Agent
        fields = ["status", "agent_type", "search"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(agent_search_q(value))
