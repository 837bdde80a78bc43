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
