"""How a worker rebuilds the work of a queued deployment call (STUDIO_EXECUTION=queue): the
deployment's pinned snapshot, never the live agent or orchestration, on the call's checked
inputs. A call accepted before its deployment stopped still runs. See `observability.queue`."""

from agents.runs import agent_work
from deployments.calls import DeploymentRefused
from deployments.models import Deployment
from deployments.pinning import PinnedAgent, pinned_of
from observability.models import Run
from observability.queue import run_rebuilder
from orchestrations.runs import orchestration_work


@run_rebuilder(Run.Kind.DEPLOYMENT)
def deployment_call_rebuild(run: Run, stream: bool):
    deployment = Deployment.objects.filter(pk=run.deployment_id, organization_id=run.organization_id).first()
    if deployment is None:
        raise DeploymentRefused(409, "deployment_missing", "The deployment of this call no longer exists.")
    pinned = pinned_of(deployment)
    if isinstance(pinned, PinnedAgent):
        return agent_work(pinned.agent, run.input, stream=stream)
    return orchestration_work(pinned.orchestration, run.input, stream=stream)
