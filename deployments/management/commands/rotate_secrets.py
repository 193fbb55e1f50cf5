"""`manage.py rotate_secrets`: after putting a new key first in STUDIO_FERNET_KEYS, re-encrypts
every secret stored at rest with it (provider keys, MCP servers' auth headers, webhook signing
secrets); the old key can then be dropped. Safe to run again."""

from django.core.management.base import BaseCommand

from agents.services import mcp_server_headers_rotate
from deployments.webhooks import webhook_secrets_rotate
from providers.services import provider_keys_rotate

ROTATIONS = (
    ("provider key(s)", provider_keys_rotate),
    ("MCP server header set(s)", mcp_server_headers_rotate),
    ("webhook secret(s)", webhook_secrets_rotate),
)


class Command(BaseCommand):
    help = "Re-encrypts every stored secret with the newest key of STUDIO_FERNET_KEYS."

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Secrets re-encrypted per transaction."
        )

    def handle(self, *args, batch_size: int, **options):
        for what, rotate in ROTATIONS:
            rotated = rotate(batch_size=batch_size)
            self.stdout.write(self.style.SUCCESS(f"Rotated {rotated} {what}."))
