"""The product's one error type: a `CodedError` carries what a client is told (HTTP status, code,
message, fields, retry_after). Every layer raises a subclass of it (`LLMError`, `AgentError`,
`OrchestrationError`, `RunFailed`, `RunLimitReached`, `DeploymentRefused`, `ApiError`), and
`studio.api.errors.error_envelope` renders any of them, on every channel. An exception that is not
a CodedError is never shown as it is, whatever attributes it has: it is an internal error.

Why here: the engine slices (`providers.llm` up) and `studio.api` must both derive from it, and
`observability` (below `providers` in the layers) too. No app may hold it (`studio.api` depends on
no app; `observability` may not import `providers`), so it lives in the project package as plain
Python that imports nothing of ours or Django's: the one `studio` module the engine slices may
import (see the import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)


class CodedError(Exception):
    """An error a client may see: `status`, `code` and `message` go into the envelope as they are,
    with `fields` (details by name) and `retry_after` (seconds, for 429/503). Subclasses may set
    `status` and `code` as class attributes."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = dict(fields or {})
        self.retry_after = retry_after


def internal_error(exc: BaseException, *, what: str) -> CodedError:
    """The error reported for an unexpected exception: a generic message with an error id for
    clients, spans and events; the exception itself goes to the server log under the same id."""
    error_id = f"err-{uuid.uuid4().hex}"
    logger.error("%s failed unexpectedly (error id %s)", what, error_id, exc_info=exc)
    return CodedError(
        f"{what} failed unexpectedly (error id {error_id}).",
        code="internal_error",
        status=500,
        fields={"error_id": error_id},
    )


class WorkPaused(Exception):  # noqa: N818 (no error: the run goes on later)
    """Raised out of a run's work when it must wait for a person (an approval, `data` says which):
    its execution ends here, holding no process, and the run is `waiting` until the decision
    resumes it. Plain Python here because the engine raises it and the supervisor records it."""

    def __init__(self, reason: str, data: Mapping[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.data = dict(data or {})


class WorkDeclined(CodedError):
    """A person declined what a run was about to do (a step's approval rejected): the run ends
    `cancelled` with this reason, not failed."""

    status = 409
    code = "approval_rejected"


def paused_in(exc: BaseException) -> WorkPaused | None:
    """The WorkPaused behind `exc`, also inside the exception groups of task groups."""
    if isinstance(exc, WorkPaused):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = paused_in(inner)
            if found is not None:
                return found
    return None
