"""The OpenAPI description of the channels that serve deployments: the HTTP channel
(`deployments.serving`, plain async Django views that drf-spectacular cannot see) and the MCP
endpoint (`deployments.mcp_server`, served in front of Django).

`serving_paths_hook` adds them to `/api/schema`. It walks the routes of `deployments.serving_urls`,
so a route added there without an operation here stops the schema from being generated, and
tests/studio/test_api_schema.py calls every operation with a real deployment key and checks the
answers against this description."""

from __future__ import annotations

import re

from deployments import serving_urls
from deployments.mcp_server import PATH_PREFIX as MCP_PATH_PREFIX
from deployments.models import NAME_PATTERN
from studio.api.openapi import ERROR_RESPONSE

TAG = "serving"
SECURITY = [{"deploymentKey": []}, {"deploymentApiKey": []}]
SECURITY_SCHEMES = {
    "deploymentKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A key of the deployment (`sk_deploy_...`), shown once by `POST /api/deploy`.",
    },
    "deploymentApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same deployment key, in the `X-API-Key` header.",
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NULLABLE_STRING = {"type": "string", "nullable": True}

COMPONENTS = {
    "WorkflowDescription": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "kind": {"type": "string", "enum": ["agent", "orchestration"]},
            "version": {"type": "string", "description": "The pinned version."},
            "input_schema": {"type": "object", "additionalProperties": True, "description": "JSON Schema."},
            "output_schema": {"type": "object", "additionalProperties": True, "description": "JSON Schema."},
            "api_url": {**NULLABLE_STRING, "description": "null when the api channel is off."},
            "mcp_url": {**NULLABLE_STRING, "description": "null when the mcp channel is off."},
            "rate_limit_per_minute": {"type": "integer"},
        },
        "required": [
            "name",
            "title",
            "description",
            "kind",
            "version",
            "input_schema",
            "output_schema",
            "api_url",
            "mcp_url",
            "rate_limit_per_minute",
        ],
    },
    "WorkflowCall": {
        "type": "object",
        "properties": {
            "inputs": {
                "type": "object",
                "additionalProperties": True,
                "description": "The inputs of the pinned signature (see `input_schema`).",
            }
        },
    },
    "WorkflowUsage": {
        "type": "object",
        "properties": {
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cost_usd": {"type": "number"},
        },
        "required": ["input_tokens", "output_tokens", "cost_usd"],
    },
    "WorkflowResult": {
        "type": "object",
        "properties": {
            "outputs": {
                "type": "object",
                "additionalProperties": True,
                "description": "See `output_schema`.",
            },
            "run_id": {"type": "string"},
            "trace_id": {"type": "string"},
            "usage": _ref("WorkflowUsage"),
        },
        "required": ["outputs", "run_id", "trace_id", "usage"],
    },
    "WorkflowAccepted": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string"},
            "trace_id": {"type": "string"},
            "status": {"type": "string"},
            "run_url": {"type": "string", "description": "Path of the run's status."},
            "events_url": {"type": "string", "description": "Path of the run's server-sent events."},
        },
        "required": ["run_id", "trace_id", "status", "run_url", "events_url"],
    },
    "WorkflowRun": {
        "type": "object",
        "properties": {
            "outputs": {
                "type": "object",
                "additionalProperties": True,
                "nullable": True,
                "description": "Once the run completed.",
            },
            "run_id": {"type": "string"},
            "trace_id": {"type": "string"},
            "usage": _ref("WorkflowUsage"),
            "status": {"type": "string", "description": "queued, running, completed, failed, ..."},
            "error": {
                "type": "object",
                "additionalProperties": True,
                "nullable": True,
                "description": "`{code, message}` of a failed run.",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "completed_at": {"type": "string", "format": "date-time", "nullable": True},
            "execution_time_ms": {"type": "integer", "nullable": True},
        },
        "required": [
            "outputs",
            "run_id",
            "trace_id",
            "usage",
            "status",
            "error",
            "created_at",
            "completed_at",
            "execution_time_ms",
        ],
    },
    "ServerSentEvent": {
        "type": "object",
        "description": "One event of a `text/event-stream` response.",
        "properties": {
            "id": {"type": "string"},
            "event": {"type": "string"},
            "data": {"type": "string", "description": "JSON: an event frame, or a JSON-RPC message (MCP)."},
            "retry": {"type": "integer"},
        },
    },
    "JsonRpcMessage": {
        "type": "object",
        "description": "A JSON-RPC 2.0 request or notification of the Model Context Protocol.",
        "properties": {
            "jsonrpc": {"type": "string", "enum": ["2.0"]},
            "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "method": {"type": "string", "example": "tools/call"},
            "params": {"type": "object", "additionalProperties": True},
        },
        "required": ["jsonrpc", "method"],
    },
    "JsonRpcError": {
        "type": "object",
        "description": "A transport-level refusal of the MCP SDK (bad Accept, media type or message).",
        "properties": {
            "jsonrpc": {"type": "string"},
            "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "error": {
                "type": "object",
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            },
        },
        "required": ["jsonrpc", "error"],
    },
}

NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The deployment's name.",
    "schema": {"type": "string", "pattern": NAME_PATTERN},
}
RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
CHANNEL = {
    "name": "X-Studio-Channel",
    "in": "header",
    "required": False,
    "description": "`cli` for calls of the `studio` CLI (the cli channel); the api channel otherwise.",
    "schema": {"type": "string"},
}
ERRORS = (
    "Errors in the standard envelope: 401 no key of this deployment (whether or not it exists), "
    "403 suspended organization, 404 stopped or the channel is off (`channel_off`), 400 inputs, "
    "429 rate limit (Retry-After), 503 rate limiter down."
)


def _operation(operation_id: str, summary: str, description: str, **fields) -> dict:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": [TAG],
        "security": SECURITY,
        **fields,
    }


# One entry per route name of deployments.serving_urls: {method: operation}.
OPERATIONS = {
    "workflow-describe": {
        "get": _operation(
            "workflow_describe",
            "What a deployment takes and returns",
            "Its input and output schemas, pinned version and URLs. " + ERRORS,
            parameters=[NAME, CHANNEL],
            responses={
                "200": _json(_ref("WorkflowDescription"), "The deployment."),
                "default": ERROR_RESPONSE,
            },
        )
    },
    "workflow-execute": {
        "post": _operation(
            "workflow_execute",
            "Call a deployment",
            "Runs the pinned agent or orchestration: 200 with the outputs once the run completed, or "
            "with `?async=1` a 202 right away (follow it at `events_url`). Also 402 budget, 502/504 "
            "provider failures (with the run id in `fields`). " + ERRORS,
            parameters=[
                NAME,
                CHANNEL,
                {
                    "name": "async",
                    "in": "query",
                    "required": False,
                    "description": "`1` or `true`: answer 202 at once; the run goes on in the background.",
                    "schema": {"type": "string"},
                },
            ],
            requestBody={"content": {"application/json": {"schema": _ref("WorkflowCall")}}},
            responses={
                "200": _json(_ref("WorkflowResult"), "The run completed: its outputs, ids and usage."),
                "202": _json(_ref("WorkflowAccepted"), "`?async=1`: the run started."),
                "default": ERROR_RESPONSE,
            },
        )
    },
    "workflow-run": {
        "get": _operation(
            "workflow_run",
            "A run of a deployment",
            "Its status, and its outputs and usage once it completed. " + ERRORS,
            parameters=[NAME, RUN_ID, CHANNEL],
            responses={"200": _json(_ref("WorkflowRun"), "The run."), "default": ERROR_RESPONSE},
        )
    },
    "workflow-run-events": {
        "get": _operation(
            "workflow_run_events",
            "The events of a run (server-sent events)",
            "Those stored after `after_seq` (0: all), then new ones, until `run.completed` or "
            "`run.failed`. Each event's `id` is its seq and its `data` the JSON event frame "
            "`{type, run_id, seq, agent_id, data, timestamp}`. " + ERRORS,
            parameters=[
                NAME,
                RUN_ID,
                CHANNEL,
                {
                    "name": "after_seq",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                },
            ],
            responses={
                "200": {
                    "description": "The event stream.",
                    "content": {"text/event-stream": {"schema": _ref("ServerSentEvent")}},
                },
                "default": ERROR_RESPONSE,
            },
        )
    },
}

MCP_OPERATIONS = {
    "post": _operation(
        "mcp_message",
        "The MCP endpoint of a deployment",
        "Model Context Protocol over streamable HTTP, stateless: one tool named after the deployment, "
        "its input schema from the pinned signature. A request is answered as server-sent events "
        "(the JSON-RPC response; progress notifications while a call runs), a notification with 202. "
        "No key of this deployment: 401; stopped or not served on MCP: 404 (standard envelope). "
        "Send `Accept: application/json, text/event-stream`.",
        parameters=[NAME],
        requestBody={"required": True, "content": {"application/json": {"schema": _ref("JsonRpcMessage")}}},
        responses={
            "200": {
                "description": "The JSON-RPC response, as server-sent events.",
                "content": {"text/event-stream": {"schema": _ref("ServerSentEvent")}},
            },
            "202": {"description": "A notification or response was accepted."},
            "400": _json(_ref("JsonRpcError"), "Not a JSON-RPC message."),
            "406": _json(_ref("JsonRpcError"), "The Accept header lacks a required media type."),
            "415": _json(_ref("JsonRpcError"), "The body is not application/json."),
            "default": ERROR_RESPONSE,
        },
    )
}


def openapi_path(route: str) -> str:
    """`workflows/<slug:name>/runs/<str:run_id>` -> `/workflows/{name}/runs/{run_id}`."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def serving_paths() -> dict[str, dict]:
    """The paths of the serving channels; KeyError for a route nobody documented."""
    paths = {openapi_path(str(url.pattern)): OPERATIONS[url.name] for url in serving_urls.urlpatterns}
    paths[f"{MCP_PATH_PREFIX}{{name}}"] = MCP_OPERATIONS
    return paths


def serving_paths_hook(result, generator, request, public):
    """drf-spectacular postprocessing hook: adds the serving channels and their security schemes."""
    result["paths"].update(serving_paths())
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(COMPONENTS)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    return result
