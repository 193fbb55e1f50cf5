from django.apps import AppConfig


class OrchestrationsConfig(AppConfig):
    name = "orchestrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orchestrations import approvals  # noqa: F401 (registers the runs' approval gate)
