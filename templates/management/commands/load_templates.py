"""`manage.py load_templates`: creates or updates the official templates (`make run` calls it)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from templates.official import OFFICIAL_DIR, TemplateDataError, official_templates_load


class Command(BaseCommand):
    help = (
        "Loads the official agent and orchestration templates shipped in templates/official/. "
        "Idempotent: templates are matched by slug and updated in place."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--directory",
            type=Path,
            default=OFFICIAL_DIR,
            help="A folder with agents/ and orchestrations/ template files (default: the shipped ones).",
        )

    def handle(self, *args, directory: Path, **options):
        try:
            report = official_templates_load(directory=directory)
        except TemplateDataError as error:
            raise CommandError("The official templates do not load:\n" + "\n".join(error.errors)) from None
        for kind, counts in (("agent", report.agents), ("orchestration", report.orchestrations)):
            self.stdout.write(
                f"Official {kind} templates: {counts.created} created, {counts.updated} updated, "
                f"{counts.unchanged} unchanged."
            )
