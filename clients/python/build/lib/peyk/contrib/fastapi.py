"""FastAPI integration.

    from peyk.contrib.fastapi import peyk_client, task_router, verified_webhook

    app.include_router(task_router(tasks, path="/peyk/tasks"))   # your @task functions

    @app.post("/notify")
    async def notify(peyk: AsyncPeyk = Depends(peyk_client)):    # one shared AsyncPeyk
        await peyk.sms.lookup("09121234567", template="verify", token="4821")

    @app.post("/peyk/events")
    async def events(event: dict = Depends(verified_webhook(SECRET))):   # 401 unless signed
        ...

Synchronous tasks run in the thread pool; `async def` tasks are awaited.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NoReturn

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from ..aio import AsyncPeyk
from ..tasks import Answer, TaskApp
from ..webhooks import InvalidSignature, verify


def _reraise(error: BaseException) -> NoReturn:
    raise error


async def handle(app: TaskApp, body: bytes, headers: dict[str, str]) -> Answer:
    """`TaskApp.handle` for an event loop."""
    prepared = app.prepare(body, headers)
    if isinstance(prepared, Answer):
        return prepared
    task, args, kwargs = prepared
    if not inspect.iscoroutinefunction(task.function):
        return await run_in_threadpool(app.answer, lambda: task.function(*args, **kwargs))
    try:
        value: Any = await task.function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 — answered as the sync path answers it
        return app.answer(partial(_reraise, error))
    return app.answer(lambda: value)


def task_router(app: TaskApp, path: str = "/peyk/tasks") -> APIRouter:
    """A router with one POST route that runs `app`'s tasks for Peyk."""
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    async def run_task(request: Request) -> Response:
        answer = await handle(app, await request.body(), dict(request.headers))
        return Response(answer.content(), status_code=answer.status, media_type="application/json", headers=answer.headers)

    return router


_client: AsyncPeyk | None = None


def peyk_client() -> AsyncPeyk:
    """A dependency: the app's one `AsyncPeyk` (from `PEYK_URL`/`PEYK_API_KEY`)."""
    global _client
    if _client is None:
        _client = AsyncPeyk()
    return _client


def verified_webhook(secret: str) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """A dependency for a route that receives Peyk's events or a job's
    callback: the parsed event, once its Standard Webhooks signature checks
    out (`401` otherwise, and the route is not called)."""

    async def dependency(request: Request) -> dict[str, Any]:
        body = await request.body()
        try:
            verify(secret, dict(request.headers), body)
        except InvalidSignature as problem:
            raise HTTPException(status_code=401, detail=str(problem)) from None
        event: dict[str, Any] = json.loads(body)
        return event

    return dependency
