"""The OpenAPI description of what every endpoint shares: the error envelope.

Every failure answers `{"error": {"code", "message", "fields"}}` (studio.api.errors), whatever its
status, so each operation documents it as its `default` response: a client (and Schemathesis)
can rely on the shape of any status an operation does not list."""

from __future__ import annotations

ERROR_COMPONENT = "Error"

ERROR_SCHEMA = {
    "type": "object",
    "description": "The one error envelope of the API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "snake_case, e.g. `validation_error`."},
                "message": {"type": "string", "description": "A human sentence."},
                "fields": {
                    "type": "object",
                    "description": "Per-field problems of a validation error (else empty).",
                    "additionalProperties": True,
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

ERROR_RESPONSE = {
    "description": "An error, in the standard envelope (4xx: the request; 5xx: the server).",
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
}

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def operations(schema: dict):
    """Yields (path, method, operation) for every operation of an OpenAPI document."""
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def error_envelope_hook(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error envelope as every operation's `default`."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for _path, _method, operation in operations(result):
        operation.setdefault("responses", {}).setdefault("default", ERROR_RESPONSE)
    return result
