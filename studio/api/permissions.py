"""Roles and the permission classes built on them."""

from __future__ import annotations

from rest_framework import permissions

ROLES = ("viewer", "member", "admin", "owner")
_RANK = {role: rank for rank, role in enumerate(ROLES)}


def has_role(user, role: str) -> bool:
    """True when the user's role is `role` or above (viewer < member < admin < owner)."""
    return _RANK.get(getattr(user, "role", ""), -1) >= _RANK[role]


class IsOrganizationMember(permissions.BasePermission):
    """An authenticated, active user of an organization (suspension is refused at authentication)."""

    message = "You must belong to an organization."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "organization_id", None))


class RolePermission(IsOrganizationMember):
    """Reads need `view.read_role`, writes `view.write_role`; an action may name its own
    role in `view.action_roles` (e.g. `{"test": "member"}`)."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        return has_role(request.user, required_role(request, view))


def required_role(request, view) -> str:
    action_roles = getattr(view, "action_roles", {})
    action = getattr(view, "action", None)
    if action in action_roles:
        return action_roles[action]
    if request.method in permissions.SAFE_METHODS:
        return getattr(view, "read_role", "viewer")
    return getattr(view, "write_role", "member")
