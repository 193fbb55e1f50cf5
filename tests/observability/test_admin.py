"""The ledger's admin: runs listed with what ran in columns that fit, detail pages whose ids link
to the records they name."""

from __future__ import annotations

import re

import pytest

from observability.models import Run, Span
from tests.agents.factories import make_agent
from tests.observability.factories import run, save
from tests.orchestrations.helpers import make_orchestration
from tests.providers.factories import make_provider_config

pytestmark = pytest.mark.django_db


def rows(html: str) -> list[str]:
    """The rows of the changelist's results table."""
    results = html.split('id="result_list"')[1].split("</table>")[0]
    return re.findall(r"<tr.*?</tr>", results.split("</thead>")[1], re.S)


def test_the_runs_list_names_the_agent_or_orchestration_with_a_link(operator_browser, organization):
    agent = make_agent(organization, name="Refund Helper")
    team = make_orchestration(organization, "sequential", [agent, agent], name="Refund Team")
    save(
        run(organization, agent_id=agent.pk, cost="0.0123456789"),
        run(organization, kind=Run.Kind.ORCHESTRATION, orchestration_id=team.pk),
    )
    html = operator_browser.get("/admin/observability/run/").content.decode()
    assert f'<a href="/admin/agents/agent/{agent.pk}/change/">Refund Helper</a>' in html
    assert f'<a href="/admin/orchestrations/orchestration/{team.pk}/change/">Refund Team</a>' in html


def test_the_runs_list_keeps_its_cells_short(operator_browser, organization):
    """Every column fits a laptop's screen beside the menu and the filters: no 36-character id,
    no cost with ten decimals, no long date."""
    (stored,) = save(run(organization, agent_id=make_agent(organization).pk, cost="0.0123456789"))
    (row,) = rows(operator_browser.get("/admin/observability/run/").content.decode())
    cells = [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    ]
    assert cells[0] == f"{stored.pk[:12]}…" and "0.012346" in cells
    assert max(len(cell) for cell in cells) <= 20, cells
    assert f'href="/admin/observability/run/{stored.pk}/change/"' in row


def test_a_runs_page_links_its_agent_and_deployment_and_a_spans_page_its_provider(
    operator_browser, organization, admin_user
):
    from tests.deployments.helpers import deploy

    deployment, _ = deploy(admin_user, name="linked")
    provider = make_provider_config(organization, name="Claude")
    (stored,) = save(
        run(organization, agent_id=deployment.agent_id, kind=Run.Kind.DEPLOYMENT, deployment_id=deployment.pk)
    )
    page = operator_browser.get(f"/admin/observability/run/{stored.pk}/change/").content.decode()
    assert (
        f'href="/admin/agents/agent/{deployment.agent_id}/change/">Support ({deployment.agent_id})</a>'
        in page
    )
    assert (
        f'href="/admin/deployments/deployment/{deployment.pk}/change/">linked ({deployment.pk})</a>' in page
    )

    span = Span.objects.create(
        run=stored,
        organization=organization,
        kind="llm",
        name="call",
        provider_id=provider.pk,
        agent_id="agent-gone",
    )
    page = operator_browser.get(f"/admin/observability/span/{span.pk}/change/").content.decode()
    assert f'href="/admin/providers/apiproviderconfig/{provider.pk}/change/">' in page
    assert "agent-gone" in page  # a deleted agent keeps its id, unlinked


def test_a_runs_page_shows_its_attempts(operator_browser, organization):
    (stored,) = save(run(organization, attempts=2))
    page = operator_browser.get(f"/admin/observability/run/{stored.pk}/change/").content.decode()
    assert re.search(r"Attempts:</label>\s*<div class=\"readonly\">2</div>", page), page
