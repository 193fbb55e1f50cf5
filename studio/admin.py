"""Auditing what staff change in /admin/: the mixin every app's ModelAdmin takes first in its bases.

Admins whose `save_model` goes through a service (which audits) keep doing so; this mixin audits
the default saves, inline rows, deletes (one or selected) and the user password form."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.forms import AdminPasswordChangeForm
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from studio.audit import audit_record


class AuditedAdmin:
    """Writes an AuditLog row for every add, change and delete made through this ModelAdmin."""

    def save_model(self, request, obj, form, change):
        changes = form_changes(form)
        super().save_model(request, obj, form, change)
        if changes or not change:
            admin_audit(request, obj, "update" if change else "create", changes)

    def save_formset(self, request, form, formset, change):
        for deleted in formset.deleted_forms:
            if deleted.instance.pk is not None:
                admin_audit(request, deleted.instance, "delete", snapshot(deleted.instance))
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            admin_audit(request, obj, "create", snapshot(obj))
        for obj, fields in formset.changed_objects:
            admin_audit(request, obj, "update", {name: plain(getattr(obj, name, None)) for name in fields})

    def delete_model(self, request, obj):
        admin_audit(request, obj, "delete", snapshot(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            admin_audit(request, obj, "delete", snapshot(obj))
        super().delete_queryset(request, queryset)

    def construct_change_message(self, request, form, formsets, add=False):
        # The password form of django.contrib.auth's UserAdmin saves without `save_model`.
        if isinstance(form, AdminPasswordChangeForm):
            admin_audit(request, form.user, "update", {"password": "changed"})
        return super().construct_change_message(request, form, formsets, add)


def admin_audit(request, obj, operation: str, changes: Mapping[str, Any]) -> None:
    organization_id = obj.pk if obj._meta.label == "accounts.Organization" else None
    audit_record(
        actor=request.user,
        organization_id=organization_id or getattr(obj, "organization_id", None),
        operation=operation,
        instance=obj,
        changes={"via": "admin", **changes},
    )


def form_changes(form) -> dict[str, Any]:
    """The fields the form changed, with their new values (ids for related records)."""
    return {name: plain(form.cleaned_data.get(name)) for name in form.changed_data}


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The record's stored fields (secret ones are redacted by `audit_record`)."""
    return {field.attname: plain(field.value_from_object(obj)) for field in obj._meta.concrete_fields}


def plain(value: Any) -> Any:
    """`value` as JSON: a record by its id, several records by their ids."""
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, models.QuerySet | list | tuple | set):
        return [plain(item) for item in value]
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
