"""Shared pieces of the deployment tests: agents to deploy and deploying them."""

from __future__ import annotations

from deployments.services import deployment_create
from tests.agents.agent_configs import support_yaml
from tests.agents.factories import make_agent

GOOD = {"response": "We will refund you today.", "priority": "high"}
INPUTS = {"inquiry": "Where is my refund?"}


def answering_agent(organization, answer=GOOD, *, name="Support", **yaml_options):
    """A mock agent that answers `answer` on every call (the script restarts with each run)."""
    config_yaml = support_yaml(responses=[{"response": answer}], **yaml_options)
    return make_agent(organization, config_yaml, name=name, description="Answers customers")


def deploy(user, agent=None, **fields):
    """Deploys `agent` (or a fresh answering agent) as `user`; returns (deployment, key secret)."""
    agent = agent or answering_agent(user.organization)
    return deployment_create(user=user, agent_id=agent.pk, **fields)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
