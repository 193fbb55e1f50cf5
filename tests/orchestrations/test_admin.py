"""The orchestrations admin links the agents an orchestration composes."""

from __future__ import annotations

import pytest

from tests.orchestrations.helpers import make_agent, make_orchestration

pytestmark = pytest.mark.django_db


def test_an_orchestrations_page_links_its_agents_in_order(operator_browser, organization):
    router, refunds = make_agent(organization, "Router"), make_agent(organization, "Refunds")
    team = make_orchestration(organization, "sequential", [router, refunds], name="Support Team")
    page = operator_browser.get(f"/admin/orchestrations/orchestration/{team.pk}/change/").content.decode()
    first = f'<a href="/admin/agents/agent/{router.pk}/change/">Router ({router.pk})</a>'
    second = f'<a href="/admin/agents/agent/{refunds.pk}/change/">Refunds ({refunds.pk})</a>'
    assert first in page and second in page and page.index(first) < page.index(second)


def test_an_approval_page_shows_its_subject_read_only(operator_browser, organization):
    from orchestrations.models import Approval
    from tests.observability.factories import run as unsaved_run

    run = unsaved_run(organization)
    run.save()
    approval = Approval.objects.create(
        organization=organization, run=run, key="1.step/0", kind="step", subject={"output": {"answer": "x"}}
    )
    listing = operator_browser.get("/admin/orchestrations/approval/")
    assert listing.status_code == 200 and approval.pk in listing.content.decode()
    page = operator_browser.get(f"/admin/orchestrations/approval/{approval.pk}/change/").content.decode()
    assert run.pk in page and "answer" in page
    assert operator_browser.get("/admin/orchestrations/approval/add/").status_code == 403
