"""Organization scoping has one override point (`OrgScopedViewSet.scoped_queryset`), and every
resource it serves has the shared API cases (tests/api_cases.py)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from django.urls import get_resolver, resolve

import tests
from agents.models import Agent
from studio.api.viewsets import OrgScopedViewSet
from tests.api_cases import APIResourceCases


def test_a_viewset_that_overrides_get_queryset_is_refused_at_import():
    with pytest.raises(TypeError, match="override scoped_queryset instead"):

        class Unscoped(OrgScopedViewSet):
            queryset = Agent.objects.all()

            def get_queryset(self):
                return Agent.objects.all()


def _routed_resources(patterns) -> set[type]:
    """The organization-scoped viewsets the URLconf routes."""
    found = set()
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            found |= _routed_resources(pattern.url_patterns)
        else:
            view = getattr(pattern.callback, "cls", None)
            if isinstance(view, type) and issubclass(view, OrgScopedViewSet):
                found.add(view)
    return found


def _subclasses(cls: type) -> set[type]:
    return {sub for direct in cls.__subclasses__() for sub in {direct, *_subclasses(direct)}}


def test_every_routed_resource_has_the_shared_api_cases():
    for module in pkgutil.walk_packages(tests.__path__, "tests."):
        if module.name.rpartition(".")[2].startswith("test_"):
            importlib.import_module(module.name)
    covered = {
        resolve(case.list_path.partition("?")[0]).func.cls
        for case in _subclasses(APIResourceCases)
        if case.list_path
    }
    missing = _routed_resources(get_resolver().url_patterns) - covered
    assert not missing, f"give these a test class inheriting tests.api_cases.APIResourceCases: {missing}"
