from agents.models import Agent
from agents.runs import agent_test_start
from observability.consumers import ExecutionConsumer


class AgentStreamConsumer(ExecutionConsumer):
    """`/api/agents/{agent_id}/stream`: run the agent and watch it live, `llm.delta` text included."""

    async def authorize(self) -> bool:
        self.agent_id = self.scope["url_route"]["kwargs"]["agent_id"]
        return await Agent.objects.filter(
            pk=self.agent_id, organization_id=self.user.organization_id
        ).aexists()

    async def start_run(self, inputs):
        agent = await Agent.objects.aget(pk=self.agent_id, organization_id=self.user.organization_id)
        run, _ = await agent_test_start(
            user=self.user, agent=agent, inputs=inputs, stream=True, background=True
        )
        return run
