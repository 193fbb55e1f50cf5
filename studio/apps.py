from django.apps import AppConfig


class StudioConfig(AppConfig):
    """The project itself, as an app for its management commands (`startup`)."""

    name = "studio"
