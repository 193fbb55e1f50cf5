from django.apps import AppConfig, apps


class DeploymentsConfig(AppConfig):
    name = "deployments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # admission's signals replace the stamps of deployments on every write, in every process
        # (the admin's, a command's and a worker's too, not only those that serve calls).
        from deployments import admission  # noqa: F401
        from deployments.webhook_delivery import on_ledger_event
        from observability.signals import ledger_event

        # Outbound webhooks hear the ledger's events (sent by apps below this one).
        ledger_event.connect(on_ledger_event, dispatch_uid="deployments.webhooks")
        if apps.is_installed("procrastinate.contrib.django"):  # PostgreSQL: the worker pool's jobs
            from deployments import webhook_tasks  # noqa: F401
