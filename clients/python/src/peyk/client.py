"""The HTTP client: submit jobs, read them (waiting for their end), and
manage task targets.

Every submission carries an idempotency key (generated when the caller
gives none), so the client can retry a submission whose answer it did not
get — a connection error, `429`, `503` — without creating a second job;
`Retry-After` is honoured.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime
from typing import Any

import httpx

from .errors import PeykError

#: What `GET /v1/jobs/{id}?wait=` holds at most per request (the API's bound).
MAX_WAIT_SECONDS = 60.0
FINISHED = frozenset({"succeeded", "failed", "dead", "cancelled"})


class Peyk:
    """A synchronous client. `base_url` and `api_key` default to `PEYK_URL`
    and `PEYK_API_KEY`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("PEYK_URL")
        api_key = api_key or os.environ.get("PEYK_API_KEY")
        if not base_url or not api_key:
            raise ValueError("Peyk needs base_url and api_key (or PEYK_URL and PEYK_API_KEY)")
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "peyk-python"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Peyk:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------

    def submit(
        self,
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
        """Submits a job; answers its record (`202`, or `200` for a replay of
        the key). Raises `PeykError` for a refusal (`422` naming the fields,
        `429`/`503` once the retries are spent)."""
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
        return self._request("POST", "/v1/jobs", json=body)

    def get_job(self, job_id: str, *, wait: float | None = None) -> dict[str, Any]:
        """The job's record; with `wait` (0–60 s), once it has ended or the
        time has passed."""
        params = {"wait": f"{min(wait, MAX_WAIT_SECONDS):g}"} if wait else None
        timeout = (wait or 0) + self._http.timeout.read if self._http.timeout.read else None
        return self._request("GET", f"/v1/jobs/{job_id}", params=params, timeout=timeout)

    def wait(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Waits until the job ends (Celery's `AsyncResult.get`) and answers
        its record, whatever its status; raises `TimeoutError` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            job = self.get_job(job_id, wait=max(0.0, min(left, MAX_WAIT_SECONDS)))
            if job["status"] in FINISHED:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")

    # -- task targets ------------------------------------------------------

    def put_task_target(self, name: str, url: str, *, secret: str | None = None, **policy: int) -> dict[str, Any]:
        """Creates or replaces the task target `name` (`timeout_seconds`,
        `max_attempts`, `min_backoff_seconds`, `max_backoff_seconds`)."""
        body: dict[str, Any] = {"url": url, **policy}
        if secret is not None:
            body["secret"] = secret
        return self._request("PUT", f"/v1/task-targets/{name}", json=body)

    # -- transport ---------------------------------------------------------

    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            try:
                extra = {"timeout": timeout} if timeout else {}
                response = self._http.request(method, path, **kwargs, **extra)
            except httpx.TransportError:
                if attempt > self.retries:
                    raise
                time.sleep(min(2 ** (attempt - 1) * 0.5, self.max_retry_wait))
                continue
            if response.status_code in (429, 503) and attempt <= self.retries:
                time.sleep(self._retry_after(response, attempt))
                continue
            if response.is_success:
                return response.json() if response.content else {}
            raise _error_of(response)

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        try:
            asked = float(response.headers.get("retry-after", ""))
        except ValueError:
            asked = 2 ** (attempt - 1) * 0.5
        return min(max(asked, 0.0), self.max_retry_wait)


def _error_of(response: httpx.Response) -> PeykError:
    try:
        error = response.json()["error"]
        return PeykError(response.status_code, error.get("code", "error"), error.get("message", ""), error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        return PeykError(response.status_code, f"http_{response.status_code}", response.text[:500])
