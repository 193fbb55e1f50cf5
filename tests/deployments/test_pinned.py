"""A deployment's pinned snapshot, typed: a PinnedAgent or a PinnedOrchestration read once per
deployment instance, which every channel (HTTP, MCP, the API) describes and calls through."""

from __future__ import annotations

import pytest

from agents.runtime.types import AgentError
from agents.services import agent_update
from deployments.pinning import PinnedAgent, PinnedOrchestration, pinned_of
from deployments.services import deployment_create, deployment_redeploy
from orchestrations.services import orchestration_create
from tests.deployments.helpers import answering_agent, deploy

pytestmark = pytest.mark.django_db


def test_an_agent_deployment_is_a_pinned_agent_read_once_until_a_redeploy(admin_user):
    agent = answering_agent(admin_user.organization)
    deployment, _ = deploy(admin_user, agent, name="support")
    pinned = pinned_of(deployment)
    assert isinstance(pinned, PinnedAgent)
    assert (pinned.title, pinned.description) == ("Support", "Answers customers")
    assert pinned.input_schema["required"] == ["inquiry"]
    assert set(pinned.output_schema["properties"]) == {"response", "priority"}
    assert pinned.inputs_check({"inquiry": "Hi"}) == {"inquiry": "Hi"}
    with pytest.raises(AgentError) as refused:
        pinned.inputs_check({})
    assert refused.value.code == "invalid_input" and "inquiry" in refused.value.fields
    assert pinned_of(deployment) is pinned  # loaded once per instance

    agent_update(user=admin_user, agent=agent, name="Support v2")
    assert pinned_of(deployment_redeploy(user=admin_user, deployment=deployment)).title == "Support v2"
    deployment.refresh_from_db()  # its `pinned` replaced, the typed snapshot is read anew
    assert pinned_of(deployment).title == "Support v2"


def test_an_orchestration_deployment_is_a_pinned_orchestration(admin_user):
    first = answering_agent(admin_user.organization, name="First")
    second = answering_agent(admin_user.organization, name="Second")
    orchestration = orchestration_create(
        user=admin_user,
        name="Pipeline",
        description="Two steps",
        pattern="sequential",
        agent_ids=[first.pk, second.pk],
    )
    deployment, _ = deployment_create(user=admin_user, orchestration_id=orchestration.pk, name="pipeline")
    pinned = pinned_of(deployment)
    assert isinstance(pinned, PinnedOrchestration)
    assert (pinned.title, pinned.description) == ("Pipeline", "Two steps")
    assert [agent.name for agent in pinned.orchestration.agents] == ["First", "Second"]
    schema = pinned.input_schema
    assert schema["required"] == ["inquiry"] and schema["additionalProperties"] is True
    assert pinned.output_schema == {"type": "object", "description": "The output of the sequential pattern."}
    assert pinned.inputs_check({"inquiry": "Hi", "audience": "x"}) == {"inquiry": "Hi", "audience": "x"}
    with pytest.raises(AgentError):
        pinned.inputs_check({"audience": "x"})
