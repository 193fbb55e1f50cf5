"""Organization scoping has one override point: `OrgScopedViewSet.scoped_queryset`."""

from __future__ import annotations

import pytest

from agents.models import Agent
from studio.api.viewsets import OrgScopedViewSet


def test_a_viewset_that_overrides_get_queryset_is_refused_at_import():
    with pytest.raises(TypeError, match="override scoped_queryset instead"):

        class Unscoped(OrgScopedViewSet):
            queryset = Agent.objects.all()

            def get_queryset(self):
                return Agent.objects.all()
