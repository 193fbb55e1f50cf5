"""How a worker rebuilds the work of a queued `agent_test` run (STUDIO_EXECUTION=queue): the
saved agent as it is now, on the run's stored inputs. See `observability.queue`."""

from agents.models import Agent
from agents.runs import agent_spec, agent_work
from agents.runtime.types import AgentError
from observability.models import Run
from observability.queue import run_rebuilder


@run_rebuilder(Run.Kind.AGENT_TEST)
def agent_test_rebuild(run: Run, stream: bool):
    agent = Agent.objects.filter(pk=run.agent_id, organization_id=run.organization_id).first()
    if agent is None:
        raise AgentError("agent_missing", "The agent of this run no longer exists.", status=409)
    return agent_work(agent_spec(agent), run.input, stream=stream)
