"""The API description is complete and true, and its pages work offline.

`/api/schema` documents the REST API and the channels that serve deployments (HTTP and MCP);
Schemathesis calls every operation of it through the ASGI app that daphne serves, with a user's
access token (and a deployment's key for the serving channels), and checks that nothing answers a
server error and that every answer conforms to the description."""

from __future__ import annotations

import re

import httpx
import pytest
import schemathesis
from django.test import Client
from django.urls import URLPattern
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import tokens_for
from deployments import serving_urls
from deployments.api.openapi import openapi_path
from studio.api.openapi import operations
from studio.asgi import application
from tests.deployments.helpers import INPUTS, bearer, deploy

SCHEMA_URL = "/api/schema?format=json"
MAX_EXAMPLES = 5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def served_as_by_daphne(scope, receive, send):
    """The app as a server runs it: the peer is an IP address (Schemathesis' ASGI client says
    `testclient`, which no server does)."""
    await application({**scope, "client": ("127.0.0.1", 50000)}, receive, send)


def asgi_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver")


@pytest.fixture
def schema_document(db, api_client):
    response = api_client.get(SCHEMA_URL)
    assert response.status_code == 200
    return response.json()


# --- complete ------------------------------------------------------------------------------------


def test_the_serving_channels_are_documented_with_the_deployment_key(schema_document):
    paths = schema_document["paths"]
    routes = [
        openapi_path(str(url.pattern)) for url in serving_urls.urlpatterns if isinstance(url, URLPattern)
    ]
    assert set(routes) == {
        "/workflows/{name}",
        "/workflows/{name}/execute",
        "/workflows/{name}/runs/{run_id}",
        "/workflows/{name}/runs/{run_id}/events",
    }
    for path in [*routes, "/mcp/{name}"]:
        assert path in paths, path
        for operation in paths[path].values():
            assert {"deploymentKey": []} in operation["security"], path
    execute = paths["/workflows/{name}/execute"]["post"]
    assert {"200", "202", "default"} <= set(execute["responses"])


def test_every_security_scheme_is_used_by_some_operation(schema_document):
    used = {
        name
        for _path, _method, operation in operations(schema_document)
        for requirement in operation.get("security", [])
        for name in requirement
    }
    assert set(schema_document["components"]["securitySchemes"]) <= used


def test_stopping_a_deployment_is_documented_as_it_answers(schema_document):
    destroy = schema_document["paths"]["/api/deployments/{id}"]["delete"]["responses"]
    assert "204" not in destroy
    assert destroy["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeploymentDetail"
    }


def test_channels_are_documented_as_a_list_or_flags(schema_document):
    channels = schema_document["components"]["schemas"]["DeployRequest"]["properties"]["channels"]
    assert [option["type"] for option in channels["oneOf"]] == ["array", "object"]
    result = schema_document["components"]["schemas"]["DeployResult"]
    assert not {"api_url", "mcp_url", "mcp_command", "cli_command"} & set(result["required"])


def test_every_error_answers_the_documented_envelope(schema_document):
    for path, method, operation in operations(schema_document):
        assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }, f"{method} {path}"


@pytest.mark.django_db
def test_a_page_far_past_the_end_is_empty_not_a_server_error(auth_client):
    response = auth_client.get("/api/agents", {"page": 10**20, "limit": 100})
    assert response.status_code == 200
    assert response.json()["results"] == [] and response.json()["page"] == 10**20


# --- offline docs --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/api/docs", "/api/redoc"])
async def test_the_docs_pages_load_everything_from_the_app(page):
    async with asgi_client() as client:
        html = (await client.get(page)).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert assets and not [url for url in assets if "://" in url or url.startswith("//")], assets
        scripts = [url for url in assets if url.endswith(".js")]
        assert scripts and all(url.startswith("/static/drf_spectacular_sidecar/") for url in scripts)
        for url in assets:
            response = await client.get(url)
            assert response.status_code == 200, url
            assert len(response.content) > 100, url


# --- true: Schemathesis over every operation ------------------------------------------------------


class Callers:
    """Credentials and real path parameters for the generated calls: an owner's access token for
    the REST API; a running deployment, one of its keys and one of its completed runs for the
    serving channels (so that calls reach past the 404 of an unknown name or run)."""

    def __init__(self, owner):
        self.access = f"Bearer {tokens_for(owner)['access']}"
        self.deployment, self.key = deploy(owner, name="schema-check")
        call = Client().post(
            "/workflows/schema-check/execute",
            {"inputs": INPUTS},
            content_type="application/json",
            headers=bearer(self.key),
        )
        assert call.status_code == 200, call.content
        self.run_id = call.json()["run_id"]

    def fixed(self, operation) -> dict:
        """The parts of the operation's requests that are not generated."""
        if not operation.path.startswith(("/workflows/", "/mcp/")):
            return {"headers": {"Authorization": self.access}}
        names = {parameter.name for parameter in operation.path_parameters}
        path_parameters = {"name": self.deployment.name, "run_id": self.run_id}
        headers = bearer(self.key)
        if operation.path.startswith("/mcp/"):
            headers["Accept"] = "application/json, text/event-stream"
        fixed = {
            "headers": headers,
            "path_parameters": {name: value for name, value in path_parameters.items() if name in names},
        }
        if operation.path.endswith("/events"):
            # From the start: a stream asked for after the end of a finished run waits seconds first.
            fixed["query"] = {"after_seq": 0}
        return fixed


def failures_of(operation, mode: GenerationMode, fixed: dict) -> str | None:
    """Runs a bounded Hypothesis test of one operation; the failure it found, if any."""

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def check(case):
        case.call_and_validate(checks=CHECKS)

    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            return None  # nothing of this operation can be made invalid
        raise
    except (Exception, BaseExceptionGroup) as failure:  # failed checks, or an error of the call itself
        return f"{mode} {operation.label}: {failure}"
    return None


@pytest.fixture
def asgi_portal_stopped_after():
    """Schemathesis serves ASGI apps on an event loop thread of its own that lives until exit;
    stopped after the test, the app's background tasks end (and close their database
    connections) before the test database is dropped."""
    yield
    from schemathesis.python import asgi

    asgi._shutdown()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("asgi_portal_stopped_after")
def test_every_operation_answers_as_documented(owner):
    schema = schemathesis.openapi.from_asgi(SCHEMA_URL, served_as_by_daphne)
    callers = Callers(owner)
    tested, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        tested += 1
        for mode in GenerationMode:
            failure = failures_of(operation, mode, callers.fixed(operation))
            if failure:
                failures.append(failure)
    assert tested >= 50
    assert not failures, "\n\n".join(failures)
