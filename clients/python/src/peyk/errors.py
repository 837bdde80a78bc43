"""Errors the client raises, and the two a task raises to tell Peyk what to do."""

from __future__ import annotations

from typing import Any


class PeykError(Exception):
    """An answer of Peyk's API other than success: its status and the
    `{"error": {"code", "message", "details"}}` body."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def fields(self) -> list[dict[str, str]]:
        """The fields a `422` names: `[{"field": "payload.url", "problem": "…"}]`."""
        return list(self.details.get("errors", []))


class BadRequest(PeykError):
    """400: a malformed request or query parameter."""


class Unauthorized(PeykError):
    """401: the API key is missing, wrong or revoked."""


class Forbidden(PeykError):
    """403: the API key lacks the scope the call needs (`scope` names it)."""

    @property
    def scope(self) -> str | None:
        scope = self.details.get("scope")
        return str(scope) if scope is not None else None


class NotFound(PeykError):
    """404: no such job (or other resource) for this tenant."""


class Conflict(PeykError):
    """409: e.g. an idempotency key reused with another body, or a job that
    cannot be cancelled or retried in its state."""


class ValidationFailed(PeykError):
    """422: the fields named in `fields` are wrong (or a refusal at
    submission: `unknown_task`, `no_gateway_account`, `unknown_template`)."""


class RateLimited(PeykError):
    """429: try again in `retry_after` seconds."""

    @property
    def retry_after(self) -> float | None:
        seconds = self.details.get("retry_after_seconds")
        return float(seconds) if seconds is not None else None


class Unavailable(PeykError):
    """503: a dependency is down, or no worker has the job's provider
    (`provider_not_configured`, the setting in `details`)."""


_BY_STATUS: dict[int, type[PeykError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> PeykError:
    """The `PeykError` subclass of an answer's status."""
    return _BY_STATUS.get(status, PeykError)(status, code, message, details)


class Reject(Exception):
    """Raised by a task: it can never succeed (wrong data, a record that is
    gone). The job fails at once with `code` and `message`; Peyk does not retry."""

    def __init__(self, message: str, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Retry(Exception):
    """Raised by a task: try again later, no sooner than `after` seconds
    (Peyk's backoff applies when it is longer). Counts as an attempt."""

    def __init__(self, message: str = "retry requested", after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.after = after
