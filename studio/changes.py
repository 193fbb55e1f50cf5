"""Applying a partial update to a model instance: one place for set, save and diff."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def apply_changes(instance, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Sets the fields that differ, saves only those, and returns them (for the audit row)."""
    changes = {name: value for name, value in fields.items() if getattr(instance, name) != value}
    for name, value in changes.items():
        setattr(instance, name, value)
    if changes:
        update_fields = list(changes)
        if hasattr(instance, "updated_at"):
            update_fields.append("updated_at")
        instance.save(update_fields=update_fields)
    return changes
