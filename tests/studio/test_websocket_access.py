"""An open socket is no licence: access is re-checked on every execute / cancel frame, and a
socket closes when the access token it was opened with expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Organization, User
from observability.models import Run
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent
from tests.communicators import communicators_disconnected, open_communicator  # noqa: F401
from tests.orchestrations.helpers import make_agent as make_named_agent
from tests.orchestrations.helpers import make_orchestration, says

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("llm_clients_closed")]

GOOD = {"response": "We will refund you today.", "priority": "high"}


def _agent_stream(member, latency_ms=None):
    extra = f"  latency_ms: {latency_ms}" if latency_ms else ""
    agent = make_agent(
        member.organization, support_yaml(responses=[{"response": GOOD}], extra_provider=extra)
    )
    return f"/api/agents/{agent.pk}/stream", {"inquiry": "Refund please"}


def _orchestration_stream(member):
    org = member.organization
    agents = [make_named_agent(org, name, responses=[says(answer=name)]) for name in ("First", "Second")]
    return f"/api/orchestrations/{make_orchestration(org, 'sequential', agents).pk}/stream", {"text": "hi"}


STREAMS = {"agent": _agent_stream, "orchestration": _orchestration_stream}


async def _open(member, stream: str):
    path, inputs = await sync_to_async(STREAMS[stream])(member)
    communicator, connected, _ = await open_communicator(path, user=member)
    assert connected
    return communicator, inputs


async def _reply_to_execute(communicator) -> dict:
    """The first frame answering an execute frame. A run started anyway is followed to its end
    first, so that a failing test leaves no run behind."""
    reply = frame = await communicator.receive_json_from()
    while frame["type"] not in ("error", "run.completed", "run.failed"):
        frame = await communicator.receive_json_from(timeout=10)
    return reply


async def _closed_with(communicator) -> int:
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


@pytest.mark.parametrize("stream", STREAMS)
async def test_a_member_deactivated_while_connected_cannot_execute(member, stream):
    communicator, inputs = await _open(member, stream)
    await User.objects.filter(pk=member.pk).aupdate(status=User.Status.DEACTIVATED)
    await communicator.send_json_to({"type": "execute", "input": inputs})
    error = await _reply_to_execute(communicator)
    assert error["type"] == "error" and error["error"]["code"] == "account_inactive"
    assert error["error"]["message"] and error["error"]["fields"] == {}
    assert await _closed_with(communicator) == 4401
    assert not await Run.objects.aexists()


@pytest.mark.parametrize("stream", STREAMS)
async def test_a_member_of_an_organization_suspended_while_connected_cannot_execute(member, stream):
    communicator, inputs = await _open(member, stream)
    await Organization.objects.filter(pk=member.organization_id).aupdate(status=Organization.Status.SUSPENDED)
    await communicator.send_json_to({"type": "execute", "input": inputs})
    assert (await _reply_to_execute(communicator))["error"]["code"] == "organization_suspended"
    assert await _closed_with(communicator) == 4403
    assert not await Run.objects.aexists()


async def test_a_member_demoted_to_viewer_while_connected_cannot_execute_but_may_keep_watching(member):
    communicator, inputs = await _open(member, "agent")
    await User.objects.filter(pk=member.pk).aupdate(role=User.Role.VIEWER)
    await communicator.send_json_to({"type": "execute", "input": inputs})
    assert (await _reply_to_execute(communicator))["error"]["code"] == "permission_denied"
    assert not await Run.objects.aexists()
    await communicator.send_json_to({"type": "dance"})  # still open: frames are still answered
    assert (await communicator.receive_json_from())["error"]["code"] == "unknown_type"


async def test_a_member_demoted_to_viewer_mid_run_cannot_cancel_it(member):
    path, inputs = await sync_to_async(_agent_stream)(member, latency_ms=5000)
    communicator, _, _ = await open_communicator(path, user=member)
    await communicator.send_json_to({"type": "execute", "input": inputs})
    started = await communicator.receive_json_from()
    assert started["type"] == "run.started"
    await User.objects.filter(pk=member.pk).aupdate(role=User.Role.VIEWER)
    await communicator.send_json_to({"type": "cancel"})
    while (frame := await communicator.receive_json_from())["type"] != "error":
        assert frame["type"] not in ("run.completed", "run.failed")
    assert frame["error"]["code"] == "permission_denied"
    assert (await Run.objects.aget(pk=started["run_id"])).status == "running"

    await User.objects.filter(pk=member.pk).aupdate(role=User.Role.MEMBER)  # and a member may again
    await communicator.send_json_to({"type": "cancel"})
    while (frame := await communicator.receive_json_from(timeout=10))["type"] != "run.failed":
        pass
    assert frame["data"]["status"] == "cancelled"


async def test_a_socket_is_closed_when_its_access_token_expires(member):
    token = await sync_to_async(AccessToken.for_user)(member)
    token.set_exp(lifetime=timedelta(seconds=3))  # expires 2 to 3 seconds from now (whole seconds)
    communicator, connected, _ = await open_communicator(
        f"/api/ws/ping?token={token}", headers=[(b"origin", b"http://127.0.0.1:8000")]
    )
    assert connected
    error = await communicator.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["error"]["code"] == "token_expired"
    assert await _closed_with(communicator) == 4401
