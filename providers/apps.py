from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # budgets registers the hold release of resumed runs; config_cache's signals replace the
        # stamps of provider configs on every write, in every process.
        from providers import budgets, config_cache  # noqa: F401
