import django_filters

from deployments.models import Deployment


class DeploymentFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Deployment.Status.choices)

    class Meta:
        model = Deployment
        fields = ["status"]
