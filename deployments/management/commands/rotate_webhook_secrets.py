from django.core.management.base import BaseCommand

from deployments.webhooks import webhook_secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypts every webhook signing secret with the newest key of STUDIO_FERNET_KEYS "
        "(run with rotate_provider_keys after putting a new key first; then the old key can be dropped)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Secrets re-encrypted per transaction."
        )

    def handle(self, *args, batch_size: int, **options):
        rotated = webhook_secrets_rotate(batch_size=batch_size)
        self.stdout.write(self.style.SUCCESS(f"Rotated {rotated} webhook secret(s)."))
