"""`AsyncPeyk`, the asynchronous client: the same namespaces and helpers
as `Peyk`, each answering an awaitable."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, BinaryIO

import httpx

from ._calls import FINISHED, MAX_WAIT_SECONDS, Call, Settings, answer, retry_delay
from .client import _read_audio
from .resources import Namespaces, transcription_call


class AsyncPeyk(Namespaces):
    """An asynchronous client (one `httpx.AsyncClient`; share it).

    `max_connections` bounds the calls in flight; more calls wait their turn.
    16 is near the most one process gets from httpx (each call costs about
    2 ms of its CPU on the benchmark machine, more with more connections);
    raise it when many `wait`/`transcribe` calls are held open at once, and
    use `jobs.submit_many` for bulk."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 60.0,
        max_connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = Settings.of(base_url, api_key, timeout=timeout, retries=retries, max_retry_wait=max_retry_wait)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url, headers=self.settings.headers, timeout=timeout, limits=limits, transport=transport
        )
        # Calls beyond the pool's size wait here rather than in httpcore's
        # pool, whose every hand-out walks all waiting requests and idle
        # connections: 1,000 calls gathered on 8 connections ran 87 a second
        # when queued there, 353 when queued here (bench/python_client.sh).
        self._gate = asyncio.Semaphore(max_connections)
        self._attach(self._run)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPeyk:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def submit(self, type: str, payload: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Submits a job (`jobs.submit`); answers its record."""
        result: dict[str, Any] = await self.jobs.submit(type, payload, **options)
        return result

    async def wait(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            job: dict[str, Any] = await self.jobs.get(job_id, wait=max(0.0, min(left, MAX_WAIT_SECONDS)))
            if job["status"] in FINISHED:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")

    async def transcribe(
        self,
        audio: str | os.PathLike[str] | bytes | BinaryIO,
        *,
        language: str | None = None,
        model: str | None = None,
        filename: str = "audio",
        wait: float | None = 300.0,
        **options: Any,
    ) -> dict[str, Any]:
        name, content = _read_audio(audio, filename)
        uploaded = await self.files.upload(name, content)
        job: dict[str, Any] = await self._run(transcription_call(uploaded["id"], language, model, dict(options)))
        return job if wait is None else await self.wait(job["id"], timeout=wait)

    async def _run(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            timeout = self.settings.timeout + call.holds
            try:
                async with self._gate:
                    response = await self._http.request(
                        call.method, call.path, json=call.json, params=call.params, files=call.files, data=call.data, timeout=timeout
                    )
            except httpx.TransportError:
                delay = retry_delay(self.settings, attempt, None)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                continue
            delay = retry_delay(self.settings, attempt, response)
            if delay is None:
                return answer(call, response)
            await asyncio.sleep(delay)
