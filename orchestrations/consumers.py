from observability.consumers import ExecutionConsumer
from orchestrations.models import Orchestration
from orchestrations.runs import orchestration_start


class OrchestrationStreamConsumer(ExecutionConsumer):
    """`/api/orchestrations/{orchestration_id}/stream`: run it and watch every agent and step live."""

    async def authorize(self) -> bool:
        self.orchestration_id = self.scope["url_route"]["kwargs"]["orchestration_id"]
        return await Orchestration.objects.filter(
            pk=self.orchestration_id, organization_id=self.user.organization_id
        ).aexists()

    async def start_run(self, inputs):
        orchestration = await Orchestration.objects.aget(
            pk=self.orchestration_id, organization_id=self.user.organization_id
        )
        run, _ = await orchestration_start(
            user=self.user, orchestration=orchestration, inputs=inputs, stream=True, background=True
        )
        return run
