"""MCP servers as tool sources through the API: roles, isolation, query counts, the URL rules, auth
headers that never come back, the tools a real MCP server lists, and agent configs naming them."""

from __future__ import annotations

import asyncio
import json

import pytest

from agents.mcp_tools import _reraise_cancellation, server_headers
from agents.models import McpServer
from observability.models import AuditLog
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent, make_mcp_server
from tests.api_cases import APIResourceCases, Call
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

SECRET = "sk-mcp-very-secret-9876"
LIST = "/api/tools/mcp-servers"


def detail(server) -> str:
    return f"{LIST}/{server.pk}"


def react_yaml(*entries: str) -> str:
    return support_yaml(strategy="react", tools="tools:\n" + "".join(f"  - {entry}\n" for entry in entries))


class TestMcpServerAPI(APIResourceCases):
    list_path = LIST
    detail_path = LIST + "/{pk}"
    writes = (
        Call("POST", LIST, {"name": "Weather", "url": "https://93.184.216.34/mcp"}),
        Call("PATCH", LIST + "/{pk}", {"name": "stolen"}),
        Call("DELETE", LIST + "/{pk}"),
    )
    write_role = "admin"
    list_queries = 2  # the caller, the page with its count
    detail_queries = 2  # the caller, the server

    def make(self, organization):
        return make_mcp_server(organization, headers={"Authorization": f"Bearer {SECRET}"})


def test_a_server_is_stored_with_its_headers_encrypted_and_shown_only_as_hints(admin_client_, admin_user):
    body = {
        "name": "Weather",
        "url": "https://93.184.216.34/mcp",
        "headers": {"Authorization": f"Bearer {SECRET}", "X-Team": "blue-team-1"},
        "allowed_tools": ["forecast"],
    }
    created = admin_client_.post(LIST, body, format="json")

    assert created.status_code == 201, created.content
    data = created.json()
    assert data["id"].startswith("mcps-") and data["allowed_tools"] == ["forecast"]
    assert data["headers_hint"] == [
        {"name": "Authorization", "hint": "9876"},
        {"name": "X-Team", "hint": "am-1"},
    ]
    server = McpServer.objects.get(pk=data["id"])
    assert SECRET not in server.headers_encrypted
    assert server_headers(server) == body["headers"]
    shown = [created.content, admin_client_.get(detail(server)).content, admin_client_.get(LIST).content]
    audit = AuditLog.objects.get(record_id=server.pk)
    assert audit.operation_type == "create" and audit.changes["headers"] == ["Authorization", "X-Team"]
    for text in [*shown, json.dumps(audit.changes).encode()]:
        assert SECRET.encode() not in text and b"blue-team" not in text


@pytest.mark.parametrize(
    "url",
    [
        "http://weather.example.com/mcp",  # not https
        "https://127.0.0.1/mcp",  # loopback
        "https://10.0.0.8/mcp",  # private
        "https://169.254.169.254/latest",  # link-local (cloud metadata)
        "https://[::ffff:127.0.0.1]/mcp",  # loopback, IPv4-mapped
        "https://user:password@93.184.216.34/mcp",  # credentials in the URL
        "https://93.184.216.34/mcp?token=abc",  # a query string
    ],
)
def test_an_unsafe_url_is_refused_and_nothing_is_stored(admin_client_, url, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    response = admin_client_.post(LIST, {"name": "Inside", "url": url}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "unsafe_url" and "url" in error["fields"]
    assert not McpServer.objects.exists() and not AuditLog.objects.exists()


def test_a_patch_to_an_unsafe_url_changes_nothing(admin_client_, admin_user, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    server = make_mcp_server(admin_user.organization, url="https://93.184.216.34/mcp")
    response = admin_client_.patch(detail(server), {"url": "https://192.168.1.1/mcp"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "unsafe_url"
    server.refresh_from_db()
    assert server.url == "https://93.184.216.34/mcp" and not AuditLog.objects.exists()


def test_bad_headers_are_400(admin_client_):
    for headers in ({"Bad Name": "x"}, {"X-Key": "a\r\nInjected: 1"}, {"Host": "evil"}, ["a"]):
        response = admin_client_.post(
            LIST, {"name": "S", "url": "https://93.184.216.34/mcp", "headers": headers}, format="json"
        )
        assert response.status_code == 400, headers
        assert "headers" in response.json()["error"]["fields"]
    assert not McpServer.objects.exists()


def test_a_name_is_unique_in_its_organization(admin_client_, admin_user, other_org_owner):
    make_mcp_server(admin_user.organization, name="Weather")
    make_mcp_server(other_org_owner.organization, name="Tickets")
    taken = admin_client_.post(LIST, {"name": "Weather", "url": "https://93.184.216.34/a/mcp"}, format="json")
    assert taken.status_code == 400 and "name" in taken.json()["error"]["fields"]
    # Another organization's names are no concern of this one.
    free = admin_client_.post(LIST, {"name": "Tickets", "url": "https://93.184.216.34/mcp"}, format="json")
    assert free.status_code == 201, free.content


def test_moving_the_url_to_another_origin_needs_the_headers_again(admin_client_, admin_user, settings):
    settings.ALLOW_PRIVATE_PROVIDER_URLS = True
    server = make_mcp_server(
        admin_user.organization, url="https://93.184.216.34/mcp", headers={"X-Api-Key": SECRET}
    )
    same_origin = admin_client_.patch(detail(server), {"url": "https://93.184.216.34/v2/mcp"}, format="json")
    assert same_origin.status_code == 200, same_origin.content

    moved = admin_client_.patch(detail(server), {"url": "https://93.184.216.35/mcp"}, format="json")
    assert moved.status_code == 400 and moved.json()["error"]["code"] == "headers_required"

    body = {"url": "https://93.184.216.35/mcp", "headers": {"X-Api-Key": "other-key-5555"}}
    with_headers = admin_client_.patch(detail(server), body, format="json")
    assert with_headers.status_code == 200, with_headers.content
    server.refresh_from_db()
    assert server_headers(server) == {"X-Api-Key": "other-key-5555"}
    update = AuditLog.objects.filter(record_id=server.pk, operation_type="update").latest("created_at")
    assert update.changes == {"url": "https://93.184.216.35/mcp", "headers_replaced": True}


def test_the_tools_of_a_real_server_are_listed_with_their_schemas(admin_client_, admin_user, fake_mcp):
    server = make_mcp_server(
        admin_user.organization, url=fake_mcp.url, headers=fake_mcp.headers, allowed_tools=["lookup_order"]
    )
    response = admin_client_.get(f"{detail(server)}/tools")

    assert response.status_code == 200, response.content
    tools = {tool["name"]: tool for tool in response.json()["tools"]}
    assert set(tools) == {"lookup_order", "repeat_text"}
    assert tools["lookup_order"]["input_schema"]["required"] == ["order_id"]
    assert tools["lookup_order"]["description"] == "The status of an order, by its number."
    assert tools["lookup_order"]["allowed"] and not tools["repeat_text"]["allowed"]
    assert fake_mcp.rejected == 0  # the header was sent


def test_a_viewer_lists_the_tools_too(viewer, fake_mcp):
    server = make_mcp_server(viewer.organization, url=fake_mcp.url, headers=fake_mcp.headers)
    assert client_for(viewer).get(f"{detail(server)}/tools").status_code == 200


def test_an_unreachable_server_is_a_clear_502(admin_client_, admin_user, fake_mcp):
    server = make_mcp_server(admin_user.organization, url="http://127.0.0.1:9/mcp")  # nothing listens
    response = admin_client_.get(f"{detail(server)}/tools")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "mcp_unreachable" and "could not connect" in error["message"]


def test_a_server_refusing_the_headers_is_a_502_naming_its_status(admin_client_, admin_user, fake_mcp):
    server = make_mcp_server(admin_user.organization, url=fake_mcp.url, headers={"X-Api-Key": "wrong-key"})
    response = admin_client_.get(f"{detail(server)}/tools")
    assert response.status_code == 502
    assert (
        response.json()["error"]["code"] == "mcp_http_error" and "401" in response.json()["error"]["message"]
    )
    assert b"wrong-key" not in response.content


def test_a_redirect_is_not_followed(admin_client_, admin_user, fake_mcp):
    # The fake serves its endpoint at /mcp; Starlette redirects /mcp/ there (same origin, 307).
    server = make_mcp_server(admin_user.organization, url=fake_mcp.url + "/", headers=fake_mcp.headers)
    response = admin_client_.get(f"{detail(server)}/tools")
    assert response.status_code == 502 and response.json()["error"]["code"] == "mcp_http_error"
    assert fake_mcp.calls == []


# --- agent configs naming MCP tools -----------------------------------------------------------------


def config_errors(response) -> dict[str, str]:
    assert response.status_code == 400, response.content
    return {item["path"]: item["message"] for item in response.json()["error"]["fields"]["config_yaml"]}


def test_an_agent_names_a_tool_of_a_server_of_its_organization(auth_client, user):
    server = make_mcp_server(user.organization)
    yaml = react_yaml(f"{{mcp_server: {server.pk}, tool: lookup_order, requires_approval: true}}")
    response = auth_client.post("/api/agents", {"name": "Orders", "config_yaml": yaml}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["config"]["tools"] == [
        {"mcp_server": server.pk, "tool": "lookup_order", "description": None, "requires_approval": True}
    ]


def test_a_missing_server_or_a_tool_outside_the_allow_list_is_named_by_path(
    auth_client, user, other_org_owner
):
    mine = make_mcp_server(user.organization, name="Orders", allowed_tools=["lookup_order"])
    theirs = make_mcp_server(other_org_owner.organization)
    yaml = react_yaml(
        f"{{mcp_server: {mine.pk}, tool: lookup_order}}",
        f"{{mcp_server: {mine.pk}, tool: delete_everything}}",
        f"{{mcp_server: {theirs.pk}, tool: lookup_order}}",
        "{mcp_server: mcps-123, tool: lookup_order}",
    )
    errors = config_errors(auth_client.post("/api/agents", {"name": "A", "config_yaml": yaml}, format="json"))
    assert errors == {"tools[3].mcp_server": "must be 'mcps-' followed by 32 hex characters, got 'mcps-123'"}

    yaml = react_yaml(
        f"{{mcp_server: {mine.pk}, tool: lookup_order}}",
        f"{{mcp_server: {mine.pk}, tool: delete_everything}}",
        f"{{mcp_server: {theirs.pk}, tool: lookup_order}}",
    )
    errors = config_errors(auth_client.post("/api/agents", {"name": "A", "config_yaml": yaml}, format="json"))
    assert errors == {
        "tools[1].tool": "the MCP server 'Orders' does not allow the tool 'delete_everything' "
        "(allowed: lookup_order)",
        "tools[2].mcp_server": f"no MCP server {theirs.pk!r} in this organization",
    }


def test_a_server_an_agent_uses_cannot_be_deleted(admin_client_, admin_user):
    server = make_mcp_server(admin_user.organization)
    make_agent(
        admin_user.organization, react_yaml(f"{{mcp_server: {server.pk}, tool: lookup_order}}"), name="Orders"
    )
    response = admin_client_.delete(detail(server))
    assert response.status_code == 409 and response.json()["error"]["code"] == "mcp_server_in_use"
    assert "'Orders'" in response.json()["error"]["message"]
    assert McpServer.objects.filter(pk=server.pk).exists()

    unused = make_mcp_server(admin_user.organization)
    assert admin_client_.delete(detail(unused)).status_code == 204
    assert AuditLog.objects.filter(record_id=unused.pk, operation_type="delete").exists()


def test_a_cancellation_wrapped_by_the_clients_task_group_stays_a_cancellation():
    wrapped = BaseExceptionGroup("task group", [ConnectionError("closing"), asyncio.CancelledError()])
    with pytest.raises(asyncio.CancelledError):
        _reraise_cancellation(wrapped)
    _reraise_cancellation(ExceptionGroup("task group", [ConnectionError("refused")]))  # not one: no raise


def test_an_agents_mcp_tools_show_in_its_history_and_its_exported_code(auth_client, user):
    server = make_mcp_server(user.organization)
    agent = make_agent(user.organization, react_yaml(f"{{mcp_server: {server.pk}, tool: lookup_order}}"))
    yaml = react_yaml(
        f"{{mcp_server: {server.pk}, tool: lookup_order}}", f"{{mcp_server: {server.pk}, tool: repeat_text}}"
    )
    changed = auth_client.patch(f"/api/agents/{agent.pk}", {"config_yaml": yaml}, format="json")
    assert changed.status_code == 200, changed.content
    (version,) = auth_client.get(f"/api/agents/{agent.pk}/versions").json()["results"]
    assert f"tools changed: added {server.pk}/repeat_text" in version["change_summary"]

    code = auth_client.get(f"/api/agents/{agent.pk}/code")
    assert code.status_code == 200
    assert (
        f"{{'mcp_server': '{server.pk}', 'tool': 'repeat_text', 'description': None" in code.content.decode()
    )


def test_the_address_is_checked_again_when_connecting(admin_client_, admin_user, fake_mcp, settings):
    # Stored while private URLs were allowed (or its host's DNS answer changed since): refused now.
    server = make_mcp_server(admin_user.organization, url=fake_mcp.url, headers=fake_mcp.headers)
    settings.ALLOW_PRIVATE_PROVIDER_URLS = False
    response = admin_client_.get(f"{detail(server)}/tools")
    assert response.status_code == 502 and response.json()["error"]["code"] == "unsafe_url"
    assert fake_mcp.sessions == 0


def test_rotating_the_fernet_keys_keeps_the_servers_headers(admin_user, settings):
    """`manage.py rotate_secrets` re-encrypts the MCP servers' auth headers with the newest key,
    so the old key can be dropped (without it they could no longer be read)."""
    from io import StringIO

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    server = make_mcp_server(admin_user.organization, headers={"Authorization": "Bearer mcp-kept-secret"})
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), *settings.FERNET_KEYS]
    out = StringIO()
    call_command("rotate_secrets", stdout=out)
    assert "Rotated 1 MCP server header set(s)." in out.getvalue()
    settings.FERNET_KEYS = settings.FERNET_KEYS[:1]  # the old keys dropped
    server.refresh_from_db()
    assert server_headers(server) == {"Authorization": "Bearer mcp-kept-secret"}
    audit = AuditLog.objects.get(model_name="McpServer", operation_type="rotate_keys")
    assert audit.changes == {"rotated": 1}
