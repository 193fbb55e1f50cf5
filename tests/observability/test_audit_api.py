"""GET /api/audit through the shared API cases (its order and filters: tests/studio/test_conventions.py)."""

from __future__ import annotations

import pytest

from observability.models import AuditLog
from tests.api_cases import APIResourceCases

pytestmark = pytest.mark.django_db


class TestAuditLogAPI(APIResourceCases):
    list_path = "/api/audit"
    read_role = "admin"
    list_queries = 2  # user, the page with its count

    def make(self, organization):
        return AuditLog.objects.create(
            organization=organization, model_name="Agent", operation_type="update", changes={"name": "x"}
        )
