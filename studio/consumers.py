from django.utils import timezone

from studio.websocket import StudioConsumer


class PingConsumer(StudioConsumer):
    """`/api/ws/ping`: answers `{"type": "ping"}` with a pong, proving the authenticated socket path."""

    async def receive_json(self, content, **kwargs):
        if content["type"] != "ping":
            await self.send_error("unknown_type", f"Unknown frame type '{content['type']}'.")
            return
        await self.send_json(
            {
                "type": "pong",
                "user_id": self.user.pk,
                "organization_id": self.user.organization_id,
                "data": content.get("data"),
                "timestamp": timezone.now().isoformat(),
            }
        )
