from django.core.management.base import BaseCommand

from providers.services import provider_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypts every stored provider key with the newest key of STUDIO_FERNET_KEYS "
        "(run after putting a new key first; then the old key can be dropped)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="Keys re-encrypted per transaction.")

    def handle(self, *args, batch_size: int, **options):
        rotated = provider_keys_rotate(batch_size=batch_size)
        self.stdout.write(self.style.SUCCESS(f"Rotated {rotated} provider key(s)."))
