from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from agents.runtime import react

        react.tool_call_limits = react.ToolCallLimits(
            per_turn=settings.REACT_MAX_TOOL_CALLS_PER_TURN, per_run=settings.REACT_MAX_TOOL_CALLS_PER_RUN
        )
