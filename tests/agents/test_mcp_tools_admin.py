"""The MCP servers admin: operators see servers without their headers' values, and a change goes
through `mcp_server_update` (URL rules, encrypted headers, an audit row without the values)."""

from __future__ import annotations

import json

import pytest

from agents.mcp_tools import server_headers
from observability.models import AuditLog
from tests.agents.factories import make_mcp_server

pytestmark = pytest.mark.django_db

SECRET = "Bearer admin-visible-never-4321"


def change_url(server) -> str:
    return f"/admin/agents/mcpserver/{server.pk}/change/"


def form_data(server, **changes) -> dict:
    data = {
        "name": server.name,
        "url": server.url,
        "allowed_tools": json.dumps(server.allowed_tools),
        "new_headers": "",
    }
    data.update(changes)
    return data


def test_the_pages_show_hints_never_header_values(operator_browser, member):
    server = make_mcp_server(member.organization, name="Orders", headers={"Authorization": SECRET})
    listing = operator_browser.get("/admin/agents/mcpserver/")
    page = operator_browser.get(change_url(server))
    assert listing.status_code == page.status_code == 200
    assert "Orders" in listing.content.decode()
    assert "4321" in page.content.decode()  # the hint
    for response in (listing, page):
        assert b"admin-visible-never" not in response.content
        assert server.headers_encrypted.encode() not in response.content


def test_a_change_is_checked_stored_encrypted_and_audited_without_values(operator_browser, member, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    server = make_mcp_server(
        member.organization, url="https://93.184.216.34/mcp", headers={"Authorization": SECRET}
    )

    unsafe = operator_browser.post(change_url(server), form_data(server, url="https://10.1.2.3/mcp"))
    assert unsafe.status_code == 200 and "non-public" in unsafe.content.decode()  # the form again
    assert not AuditLog.objects.exists()

    headers = json.dumps({"Authorization": "Bearer rotated-key-8888"})
    saved = operator_browser.post(
        change_url(server), form_data(server, name="Orders v2", new_headers=headers)
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    server.refresh_from_db()
    assert server.name == "Orders v2" and server_headers(server) == {
        "Authorization": "Bearer rotated-key-8888"
    }
    (row,) = AuditLog.objects.filter(record_id=server.pk)
    assert row.changes == {"name": "Orders v2", "headers_replaced": True}
    assert "rotated-key" not in json.dumps(row.changes)


def test_servers_are_added_and_removed_through_the_api_only(operator_browser, member):
    server = make_mcp_server(member.organization)
    assert operator_browser.get("/admin/agents/mcpserver/add/").status_code == 403
    assert operator_browser.get(f"/admin/agents/mcpserver/{server.pk}/delete/").status_code == 403


def test_moving_the_url_to_another_origin_asks_for_the_headers_again(operator_browser, member, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    server = make_mcp_server(
        member.organization, url="https://93.184.216.34/mcp", headers={"Authorization": SECRET}
    )

    refused = operator_browser.post(change_url(server), form_data(server, url="https://93.184.216.35/mcp"))
    assert refused.status_code == 200 and "needs the headers again" in refused.content.decode()
    server.refresh_from_db()
    assert server.url == "https://93.184.216.34/mcp" and not AuditLog.objects.exists()

    headers = json.dumps({"Authorization": "Bearer for-the-new-host-7777"})
    moved = operator_browser.post(
        change_url(server), form_data(server, url="https://93.184.216.35/mcp", new_headers=headers)
    )
    assert moved.status_code == 302
    server.refresh_from_db()
    assert server_headers(server) == {"Authorization": "Bearer for-the-new-host-7777"}
