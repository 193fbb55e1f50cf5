"""Root-level routes of the HTTP channel (`path("", include("deployments.serving_urls"))`)."""

from django.urls import path

from deployments import serving

RUN_ID = "<str:run_id>"

urlpatterns = [
    path("workflows/<slug:name>", serving.workflow_describe, name="workflow-describe"),
    path("workflows/<slug:name>/execute", serving.workflow_execute, name="workflow-execute"),
    path(f"workflows/<slug:name>/runs/{RUN_ID}", serving.workflow_run, name="workflow-run"),
    path(
        f"workflows/<slug:name>/runs/{RUN_ID}/events", serving.workflow_run_events, name="workflow-run-events"
    ),
]
