"""`Peyk`, the synchronous client.

Every submission carries an idempotency key (generated when the caller
gives none), so the client retries a submission whose answer it did not get
— a connection error, `429`, `503`, honouring `Retry-After` — without ever
creating a second job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from ._calls import FINISHED, MAX_WAIT_SECONDS, Call, Settings, answer, retry_delay
from .resources import Namespaces, transcription_call


class Peyk(Namespaces):
    """A synchronous client. `base_url` and `api_key` default to `PEYK_URL`
    and `PEYK_API_KEY`; `retries` counts the retries of one call."""

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
        self.settings = Settings.of(base_url, api_key, timeout=timeout, retries=retries, max_retry_wait=max_retry_wait)
        self._http = httpx.Client(base_url=self.settings.base_url, headers=self.settings.headers, timeout=timeout, transport=transport)
        self._attach(self._run)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Peyk:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, type: str, payload: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Submits a job (`jobs.submit`); answers its record."""
        result: dict[str, Any] = self.jobs.submit(type, payload, **options)
        return result

    def wait(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Waits until the job ends (Celery's `AsyncResult.get`); answers its
        record whatever its status; `TimeoutError` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            job = self.jobs.get(job_id, wait=max(0.0, min(left, MAX_WAIT_SECONDS)))
            if job["status"] in FINISHED:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")

    def transcribe(
        self,
        audio: str | os.PathLike[str] | bytes | BinaryIO,
        *,
        language: str | None = None,
        model: str | None = None,
        filename: str = "audio",
        wait: float | None = 300.0,
        **options: Any,
    ) -> dict[str, Any]:
        """Uploads the audio, submits a `transcription` and (unless `wait`
        is None) waits for it: the job's record, its transcript in `result`."""
        name, content = _read_audio(audio, filename)
        uploaded = self.files.upload(name, content)
        job = self._run(transcription_call(uploaded["id"], language, model, dict(options)))
        return job if wait is None else self.wait(job["id"], timeout=wait)

    def _run(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            timeout = self.settings.timeout + call.holds
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params, files=call.files, data=call.data, timeout=timeout
                )
            except httpx.TransportError:
                delay = retry_delay(self.settings, attempt, None)
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            delay = retry_delay(self.settings, attempt, response)
            if delay is None:
                return answer(call, response)
            time.sleep(delay)


def _read_audio(audio: str | os.PathLike[str] | bytes | BinaryIO, filename: str) -> tuple[str, bytes]:
    if isinstance(audio, bytes):
        return filename, audio
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        return path.name, path.read_bytes()
    return Path(getattr(audio, "name", filename)).name, audio.read()
