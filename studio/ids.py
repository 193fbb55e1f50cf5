"""Prefixed string ids (`org-…`, `run-…`): one prefix per resource, 32 hex characters after it."""

from __future__ import annotations

import uuid

from django.db import models


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def id_pattern(prefix: str) -> str:
    """The regex (unanchored, for URL routes and schema patterns) of an id `new_id(prefix)` makes."""
    return rf"{prefix}-[0-9a-f]{{32}}"


class PrefixedIdField(models.CharField):
    """Primary key holding `<prefix>-<32 hex>`, generated on creation."""

    def __init__(self, prefix: str, **kwargs):
        self.prefix = prefix
        kwargs.update(max_length=40, primary_key=True, editable=False, default=self._generate)
        super().__init__(**kwargs)

    def _generate(self) -> str:
        return new_id(self.prefix)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        for key in ("max_length", "primary_key", "editable", "default"):
            kwargs.pop(key, None)
        kwargs["prefix"] = self.prefix
        return name, path, args, kwargs
