from django.apps import AppConfig


class OrchestrationsConfig(AppConfig):
    name = "orchestrations"
    default_auto_field = "django.db.models.BigAutoField"
