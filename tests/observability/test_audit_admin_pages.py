"""Every admin page that can write is audited, the pages of Django's and simplejwt's apps too: a
group grants operators permissions, and deleting a blacklisted token makes a refresh token that was
logged out usable again."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import RequestFactory
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from observability.models import AuditLog
from studio.admin import AuditedAdmin

pytestmark = pytest.mark.django_db

# Admins that audit their writes themselves (the provider config's audits the key's hint, not the key).
SELF_AUDITED = {"providers.APIProviderConfig"}


def test_every_admin_page_that_can_add_change_or_delete_is_audited(operator):
    request = RequestFactory().post("/admin/")
    request.user = operator
    unaudited = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if (
            model_admin.has_add_permission(request)
            or model_admin.has_change_permission(request)
            or model_admin.has_delete_permission(request)
        )
        and not isinstance(model_admin, AuditedAdmin)
        and model._meta.label not in SELF_AUDITED
    ]
    assert unaudited == []


def test_a_group_made_in_the_admin_is_audited(operator_browser, operator):
    permission = Permission.objects.get(codename="change_user")

    response = operator_browser.post(
        "/admin/auth/group/add/", {"name": "Support desk", "permissions": [permission.pk]}
    )

    assert response.status_code == 302
    group = Group.objects.get(name="Support desk")
    (row,) = AuditLog.objects.filter(model_name="Group", record_id=str(group.pk))
    assert row.operation_type == "create" and row.user_id == operator.pk
    assert row.changes["permissions"] == [str(permission.pk)]


def test_a_blacklisted_token_deleted_in_the_admin_is_audited(operator_browser, operator, member):
    RefreshToken.for_user(member).blacklist()
    blacklisted = BlacklistedToken.objects.get()

    response = operator_browser.post(
        f"/admin/token_blacklist/blacklistedtoken/{blacklisted.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302 and not BlacklistedToken.objects.exists()
    (row,) = AuditLog.objects.filter(model_name="BlacklistedToken", operation_type="delete")
    assert row.record_id == str(blacklisted.pk) and row.actor_email == operator.email
