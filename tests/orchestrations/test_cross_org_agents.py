"""An orchestration runs only agents of its own organization, whatever ids its row holds."""

from __future__ import annotations

import pytest

from observability.models import Run, Span
from tests.orchestrations.helpers import make_agent, make_orchestration, says

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_orchestration_naming_another_organizations_agent_cannot_run_it(
    auth_client, organization, other_org_owner
):
    own = make_agent(organization, "Writer", responses=[says(answer="draft")])
    theirs = make_agent(other_org_owner.organization, "Their secret agent", responses=[says(answer="leak")])
    # The API refuses such ids; a row holding one (written before that check, or by hand) must not
    # become a way to run another organization's agent on its budget and see its answer.
    orchestration = make_orchestration(organization, "sequential", [own, theirs])

    response = auth_client.post(
        f"/api/orchestrations/{orchestration.pk}/execute", {"input": {"text": "hi"}}, format="json"
    )

    assert response.status_code == 409, response.json()
    assert response.json()["error"]["code"] == "agent_missing"
    assert "leak" not in response.content.decode() and "Their secret agent" not in response.content.decode()
    assert not Span.objects.filter(agent_id=theirs.pk).exists()
    assert not Run.objects.exists()
