from asgiref.sync import sync_to_async

from agents.execution import agent_inputs_check, agent_run_new, agent_spec, agent_work
from agents.models import Agent
from observability.consumers import ExecutionConsumer
from observability.limits import run_admit
from observability.services import launch_run


def _prepare(agent_id: str, organization_id: str, user, inputs):
    agent = Agent.objects.get(pk=agent_id, organization_id=organization_id)
    inputs = agent_inputs_check(agent, inputs)
    spec = agent_spec(agent)
    return run_admit(agent_run_new(agent=agent, user=user, inputs=inputs)), spec, inputs


class AgentStreamConsumer(ExecutionConsumer):
    """`/api/agents/{agent_id}/stream`: run the agent and watch it live, `llm.delta` text included."""

    async def authorize(self) -> bool:
        self.agent_id = self.scope["url_route"]["kwargs"]["agent_id"]
        return await Agent.objects.filter(
            pk=self.agent_id, organization_id=self.user.organization_id
        ).aexists()

    async def start_run(self, inputs):
        run, spec, inputs = await sync_to_async(_prepare)(
            self.agent_id, self.user.organization_id, self.user, inputs
        )
        await self.follow(run.pk, replay=False)
        launch_run(run, agent_work(spec, inputs, stream=True), name=spec.name)
        return run
