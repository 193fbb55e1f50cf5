"""The organization-scoped base every resource viewset uses."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import viewsets

from studio.api.permissions import RolePermission


class OrgScopedViewSet(viewsets.GenericViewSet):
    """Rows of the caller's organization only: another organization's object is a 404.

    Subclasses declare `queryset` (or override `scoped_queryset`, the one place a resource says
    which rows its caller sees), the serializers and the roles (`read_role`, `write_role`,
    `action_roles`). `get_queryset` is final: a subclass that overrides it is refused at import."""

    permission_classes = [RolePermission]
    read_role = "viewer"
    write_role = "member"
    action_roles: dict[str, str] = {}
    throttle_scope: str | None = None  # an expensive action names its scope (studio.api.throttles)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in vars(cls):
            raise TypeError(f"{cls.__name__} overrides get_queryset; override scoped_queryset instead.")

    def scoped_queryset(self, *, organization, user) -> QuerySet:
        """The rows `user` of `organization` may see: by default the queryset's rows of it."""
        return self.queryset.filter(organization=organization)

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no caller
            return self.queryset.none()
        user = self.request.user
        return self.scoped_queryset(organization=user.organization, user=user)
