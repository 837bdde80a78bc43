"""The task endpoint as a FastAPI router.

    from peyk.contrib.fastapi import task_router
    app.include_router(task_router(tasks, path="/peyk/tasks"))

Synchronous tasks run in the thread pool; `async def` tasks are awaited.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any, NoReturn

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ..tasks import Answer, TaskApp


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
