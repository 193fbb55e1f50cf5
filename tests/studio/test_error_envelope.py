"""One error type, one renderer: only the product's CodedErrors reach clients as they are; any
other exception, whatever attributes it has, is an internal error. `error_envelope` gives every
channel its status, body, Retry-After and WWW-Authenticate."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from accounts.services import tokens_for
from agents.runtime.types import AgentError
from deployments.calls import DeploymentRefused
from observability.consumers import ExecutionConsumer
from observability.limits import RunLimitReached
from observability.models import Run
from observability.supervisor import RunFailed, run_execute
from orchestrations.patterns.base import OrchestrationError
from providers.llm.types import LLMError
from studio.api.errors import API_CHALLENGE, ApiError, error_envelope
from studio.errors import CodedError
from studio.websocket import JWTAuthMiddleware
from tests.studio.urls_failing import LibraryError

SECRET = "hunter2"


def test_the_renderer_gives_the_envelope_with_retry_after_in_whole_seconds():
    error = CodedError("Slow down.", code="rate_limited", status=429, fields={"scope": "x"}, retry_after=2.6)

    status, body, headers = error_envelope(error)

    assert status == 429
    assert body == {"error": {"code": "rate_limited", "message": "Slow down.", "fields": {"scope": "x"}}}
    assert headers == {"Retry-After": "3"}
    assert error_envelope(CodedError("Soon.", status=503, retry_after=0.2))[2] == {"Retry-After": "1"}


def test_the_renderer_challenges_a_401_with_the_channels_realm():
    refused = CodedError("A key is required.", code="not_authenticated", status=401)

    assert error_envelope(refused)[2] == {"WWW-Authenticate": API_CHALLENGE}
    assert error_envelope(refused, challenge='Bearer realm="x"')[2] == {
        "WWW-Authenticate": 'Bearer realm="x"'
    }
    assert error_envelope(CodedError("No.", status=403))[2] == {}


@pytest.mark.django_db
def test_an_api_401_carries_www_authenticate_from_the_renderer(api_client):
    response = api_client.get("/api/users")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == API_CHALLENGE


def test_every_error_of_the_product_is_a_coded_error():
    for error_type in (
        LLMError,
        AgentError,
        OrchestrationError,
        RunFailed,
        RunLimitReached,
        DeploymentRefused,
    ):
        assert issubclass(error_type, CodedError)
    assert isinstance(ApiError(409, "conflict", "Taken."), CodedError)
    assert not issubclass(OrchestrationError, AgentError)


@pytest.mark.django_db
@pytest.mark.urls("tests.studio.urls_failing")
def test_a_library_exception_that_looks_coded_is_a_500_in_a_view(auth_client, caplog):
    auth_client.raise_request_exception = False

    with caplog.at_level(logging.ERROR):
        response = auth_client.get("/api/explode-like-ours")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert SECRET not in response.content.decode()
    assert any(isinstance(r.exc_info and r.exc_info[1], LibraryError) for r in caplog.records)


@pytest.mark.django_db(transaction=True)
async def test_a_library_exception_that_looks_coded_fails_a_run_as_an_internal_error(member, caplog):
    run = await Run.objects.acreate(
        organization_id=member.organization_id, user_id=member.pk, kind="agent_test", input={}
    )

    async def work(recorder, root_span_id):
        raise LibraryError(LibraryError.message)

    with caplog.at_level(logging.ERROR), pytest.raises(RunFailed) as failed:
        await run_execute(run, work, name="breaks")

    assert (failed.value.code, failed.value.status) == ("internal_error", 500)
    assert SECRET not in failed.value.message
    stored = await Run.objects.aget(pk=run.pk)
    assert stored.status == "failed" and stored.error["code"] == "internal_error"
    assert SECRET not in str(stored.error)
    assert any(isinstance(r.exc_info and r.exc_info[1], LibraryError) for r in caplog.records)


class _StartFails(ExecutionConsumer):
    """An execution consumer whose run start meets a library exception that looks coded."""

    async def start_run(self, inputs):
        raise LibraryError(LibraryError.message)


@pytest.mark.django_db(transaction=True)
async def test_a_library_exception_that_looks_coded_is_an_internal_error_frame(member):
    application = JWTAuthMiddleware(URLRouter([path("ws/start-fails", _StartFails.as_asgi())]))
    token = await sync_to_async(lambda: tokens_for(member)["access"])()
    communicator = WebsocketCommunicator(application, f"/ws/start-fails?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    try:
        await communicator.send_json_to({"type": "execute", "input": {}})
        frame = await communicator.receive_json_from()
    finally:
        await communicator.disconnect()

    assert frame["type"] == "error" and frame["error"]["code"] == "internal_error"
    assert frame["error"]["fields"]["error_id"] in frame["error"]["message"]
    assert SECRET not in str(frame)
