"""What the sync and async clients share: each API operation described
once as a `Call` (method, path, body), the retry rule, and how an error
answer becomes a `PeykError`. `Peyk` and `AsyncPeyk` only carry calls out.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from .errors import error_for

#: What `GET /v1/jobs/{id}?wait=` holds at most per request (the API's bound).
MAX_WAIT_SECONDS = 60.0
FINISHED = frozenset({"succeeded", "failed", "dead", "cancelled"})
USER_AGENT = "peyk-python"


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    #: Seconds the server may hold the request (`?wait=`), added to the timeout.
    holds: float = 0.0
    #: Statuses answered without a body (`204`).
    empty: bool = False


@dataclass
class Settings:
    base_url: str
    api_key: str
    timeout: float = 30.0
    retries: int = 3
    max_retry_wait: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, base_url: str | None, api_key: str | None, **options: Any) -> Settings:
        base_url = base_url or os.environ.get("PEYK_URL")
        api_key = api_key or os.environ.get("PEYK_API_KEY")
        if not base_url or not api_key:
            raise ValueError("Peyk needs base_url and api_key (or PEYK_URL and PEYK_API_KEY)")
        headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
        return cls(base_url.rstrip("/"), api_key, headers=headers, **options)


def retry_delay(settings: Settings, attempt: int, response: httpx.Response | None) -> float | None:
    """Seconds to wait before trying `attempt + 1`, or `None` to give up:
    connection errors (`response` None), `429` and `503` are retried,
    `Retry-After` honoured, up to `settings.retries` times."""
    if attempt > settings.retries:
        return None
    backoff = 0.5 * 2 ** (attempt - 1)
    if response is None:
        return min(backoff, settings.max_retry_wait)
    if response.status_code not in (429, 503):
        return None
    try:
        asked = float(response.headers.get("retry-after", ""))
    except ValueError:
        asked = backoff
    return min(max(asked, 0.0), settings.max_retry_wait)


def answer(call: Call, response: httpx.Response) -> Any:
    """The body of a successful answer, or the `PeykError` of a refusal."""
    if response.is_success:
        return None if call.empty or not response.content else response.json()
    try:
        error = response.json()["error"]
        code, message, details = error.get("code", "error"), error.get("message", ""), error.get("details") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, details = f"http_{response.status_code}", response.text[:500], {}
    raise error_for(response.status_code, code, message, details)


def job_body(
    type: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    delay_seconds: float | None = None,
    run_at: datetime | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    metadata: dict[str, str] | None = None,
    callback_url: str | None = None,
    callback_secret: str | None = None,
) -> dict[str, Any]:
    """A submission as `POST /v1/jobs` takes it, with an idempotency key
    (generated when not given: a retried submission never makes two jobs)."""
    body: dict[str, Any] = {"type": type, "payload": payload, "idempotency_key": idempotency_key or f"py-{uuid.uuid4()}"}
    options = {
        "delay_seconds": delay_seconds,
        "run_at": run_at.isoformat() if run_at else None,
        "priority": priority,
        "max_attempts": max_attempts,
        "metadata": metadata,
        "callback_url": callback_url,
        "callback_secret": callback_secret,
    }
    body.update({name: value for name, value in options.items() if value is not None})
    return body


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
