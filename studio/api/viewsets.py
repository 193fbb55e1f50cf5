"""The organization-scoped base every resource viewset uses."""

from __future__ import annotations

from rest_framework import viewsets

from studio.api.permissions import RolePermission


class OrgScopedViewSet(viewsets.GenericViewSet):
    """Rows of the caller's organization only: another organization's object is a 404.

    Subclasses declare `queryset` (or override `scoped_queryset`), the serializers and the roles
    (`read_role`, `write_role`, `action_roles`)."""

    permission_classes = [RolePermission]
    read_role = "viewer"
    write_role = "member"
    action_roles: dict[str, str] = {}
    organization_field = "organization"
    throttle_scope: str | None = None  # an expensive action names its scope (studio.api.throttles)

    def scoped_queryset(self):
        return self.queryset.all()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset.none()
        return self.scoped_queryset().filter(**{self.organization_field: self.request.user.organization_id})
