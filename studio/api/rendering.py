"""Read serializers that render without DRF's per-field machinery.

A DRF serializer builds its fields anew for each serializer instance: a `ModelSerializer` by model
introspection (about 0.5 ms a serializer, twice for `/api/auth/me` with its nested organization),
and a list's child once per request; then each value goes through `Field.get_attribute` and
`to_representation` (for a datetime, `enforce_timezone` and the format setting, every time).
`RenderedFields` compiles, once per class, a plan from the class's own fields (built once, on a
prototype instance): for each readable field, how to read its value (an attribute or key for a
plain source, else the field's own `get_attribute`) and how to convert it (`str`, `int`, `float`,
the value itself, an ISO 8601 datetime, or the field's own `to_representation` for the rest). The
output is what DRF renders; tests/studio/test_rendering.py compares every list endpoint's bytes
with DRF's. The class's fields (what drf-spectacular documents and what `.fields` returns) are
unchanged.

Only for serializers whose fields do not depend on the instance or the context: every field must
be one whose rendering reads neither (DRF's value fields below with DRF's own rendering methods, a
field class of ours that says `context_free = True`, or a nested `RenderedFields` serializer of
such fields); a `SerializerMethodField` is called on the serializer being rendered, so it may read
`self.context`. A class with any other field renders the DRF way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework import fields as drf_fields
from rest_framework.fields import SkipField
from rest_framework.settings import api_settings

# Fields whose get_attribute and to_representation read only the value and their own options.
CONTEXT_FREE_FIELDS = (
    drf_fields.BooleanField,
    drf_fields.CharField,
    drf_fields.ChoiceField,
    drf_fields.DateField,
    drf_fields.DateTimeField,
    drf_fields.DecimalField,
    drf_fields.DictField,
    drf_fields.FloatField,
    drf_fields.IntegerField,
    drf_fields.JSONField,
    drf_fields.ListField,
    drf_fields.ReadOnlyField,
    drf_fields.UUIDField,
)

_RENDERING = ("get_attribute", "to_representation")
_METHOD = object()  # a plan entry rendered by a method of the serializer being rendered
_UNREAD = object()


class RenderedFields:
    # Mixin for a read (`Serializer` or `ModelSerializer`) subclass; see the module docstring. Not
    # a docstring: drf-spectacular would show it as the description of every serializer using it.

    _plans: dict[type, tuple | None] = {}

    @classmethod
    def render_plan(cls) -> tuple | None:
        """((name, attribute, field or _METHOD, convert), ...) of the readable fields, bound to a
        prototype instance built once; None when a field's rendering may read the instance or
        context. `attribute` is the one attribute (or key) a plain source reads, else None (the
        field's own `get_attribute`); for a method field, the method's name."""
        try:
            return cls._plans[cls]
        except KeyError:
            # Built without a lock (a nested serializer's plan is built inside): two threads that
            # build at once build the same plan, and the first one stored is kept.
            return cls._plans.setdefault(cls, _plan_of(cls()))

    def to_representation(self, instance):
        plan = self.render_plan()
        if plan is None:
            return super().to_representation(instance)
        mapping = isinstance(instance, Mapping)
        rendered = {}
        for name, attribute, field, convert in plan:
            if field is _METHOD:
                rendered[name] = getattr(self, attribute)(instance)
                continue
            value = _UNREAD
            if attribute is not None:
                try:  # noqa: SIM105 (contextlib.suppress costs more in this loop)
                    value = instance[attribute] if mapping else getattr(instance, attribute)
                except (KeyError, AttributeError, ObjectDoesNotExist):
                    pass  # DRF's get_attribute decides: a default, None, skipped or an error
            if value is _UNREAD or callable(value):  # DRF calls a callable source
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
            rendered[name] = None if value is None else value if convert is None else convert(value)
        return rendered


@receiver(setting_changed)
def _settings_changed(*, setting, **kwargs):
    if setting in ("REST_FRAMEWORK", "USE_TZ"):  # the converters were compiled with them
        RenderedFields._plans.clear()


def _plan_of(prototype: serializers.BaseSerializer) -> tuple | None:
    plan = []
    for field in prototype._readable_fields:
        if isinstance(field, serializers.SerializerMethodField):
            plan.append((field.field_name, field.method_name, _METHOD, None))
        elif _context_free(field):
            # One attribute, read as Field.get_attribute reads it (a get_attribute of its own is called).
            own_read = type(field).get_attribute is not drf_fields.Field.get_attribute
            attribute = field.source_attrs[0] if len(field.source_attrs) == 1 and not own_read else None
            plan.append((field.field_name, attribute, field, _converter(field)))
        else:
            return None
    return tuple(plan)


def _context_free(field) -> bool:
    if isinstance(field, serializers.ListSerializer):
        return _context_free(field.child)
    if isinstance(field, RenderedFields):
        plan = field.render_plan()
        # A method of a nested serializer runs on the prototype, whose context is not the
        # request's: only when its class says its methods read nothing but the instance.
        methods_read_no_context = vars(type(field)).get("context_free", False)
        return plan is not None and (methods_read_no_context or all(e[2] is not _METHOD for e in plan))
    if isinstance(field, serializers.BaseSerializer) or not isinstance(field, CONTEXT_FREE_FIELDS):
        return False
    if isinstance(field, drf_fields.ListField | drf_fields.DictField) and not _context_free(field.child):
        return False
    # A subclass of ours may render differently (and read the context): DRF's own methods, or
    # ones of a class that says they read nothing else.
    return all(_defined_context_free(type(field), name) for name in _RENDERING)


def _defined_context_free(cls: type, method: str) -> bool:
    owner = next(klass for klass in cls.__mro__ if method in vars(klass))
    return owner.__module__ == drf_fields.__name__ or vars(owner).get("context_free", False)


def _converter(field) -> Callable | None:
    """What renders a field's non-null value: exactly its `to_representation`, for the common
    fields without the call layers; None: the value itself."""
    method = type(field).to_representation
    if method in (drf_fields.ReadOnlyField.to_representation, drf_fields.JSONField.to_representation):
        return None if not getattr(field, "binary", False) else field.to_representation
    if method is drf_fields.CharField.to_representation:
        return str
    if method is drf_fields.IntegerField.to_representation:
        return int
    if method is drf_fields.FloatField.to_representation:
        return float
    if method is drf_fields.DateTimeField.to_representation:
        return _datetime_converter(field)
    return field.to_representation


def _datetime_converter(field) -> Callable:
    """DateTimeField.to_representation of an aware datetime in ISO 8601 (`Z` for UTC), in the
    field's time zone or the current one; anything else goes to the field itself."""
    fallback = field.to_representation
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    own_zone = getattr(field, "timezone", None)
    if output_format is None or output_format.lower() != ISO_8601:
        return fallback
    if own_zone is None and (hasattr(field, "timezone") or not settings.USE_TZ):
        return fallback  # naive output

    def convert(value):
        if type(value) is not dt.datetime or value.utcoffset() is None:
            return fallback(value)
        try:
            text = value.astimezone(own_zone or timezone.get_current_timezone()).isoformat()
        except OverflowError:
            return fallback(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return convert
