from rest_framework import mixins

from observability.api.filters import AuditLogFilterSet
from observability.api.serializers import AuditLogSerializer
from observability.models import AuditLog
from studio.api.viewsets import OrgScopedViewSet


class AuditLogViewSet(mixins.ListModelMixin, OrgScopedViewSet):
    """The organization's audit trail, newest first (admin+)."""

    queryset = AuditLog.objects.select_related("user")
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilterSet
    read_role = "admin"
