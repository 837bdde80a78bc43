"""Your own functions as Peyk HTTP tasks: the replacement of Celery's
`@app.task` and `.delay()`.

    import peyk

    tasks = peyk.TaskApp(secret=os.environ["PEYK_TASK_SECRET"])   # or `@peyk.task`, the default app's

    @tasks.task
    def rebuild_report(month: str, clinic: int) -> dict:
        ...
        return {"rows": 3}

    rebuild_report.delay("1405-09", clinic=12)            # a `task` job
    rebuild_report.apply_async(("1405-09",), {"clinic": 12}, countdown=60)

One endpoint of the app serves every task of a `TaskApp`
(`peyk.contrib.django.task_view(tasks)` or `peyk.contrib.fastapi.task_router(tasks)`), and
`tasks.register(url)` creates a task target per task pointing there. Peyk
POSTs `{"task", "args": {"args": [...], "kwargs": {...}}, "job_id",
"attempt"}`, signed; the endpoint checks the signature, binds the arguments
to the function's signature and calls it:

- it returns: `200` with its (JSON) value, the job's result;
- arguments that do not fit the function, or `peyk.Reject`: `422`, the job
  fails at once (Peyk does not retry);
- `peyk.Retry(after=…)`: `503` with `Retry-After`, tried again later;
- any other exception: `500`, retried on the target's backoff;
- a bad or missing signature: `401` (and the function is not called).
"""

from __future__ import annotations

import inspect
import json
import os
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar

from .client import Peyk
from .errors import Reject, Retry
from .webhooks import InvalidSignature, verify

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("peyk.tasks")


@dataclass
class Answer:
    """What the task endpoint answers Peyk."""

    status: int
    body: dict[str, Any] | Any
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False).encode()


class Task(Generic[P, R]):
    """A function registered as a task: call it directly, or queue it."""

    def __init__(self, app: TaskApp, function: Callable[P, R], name: str, policy: dict[str, int]) -> None:
        self.app = app
        self.function = function
        self.name = name
        self.policy = policy
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", name)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        """Queues the function with these arguments; answers the job record."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        priority: int | None = None,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        callback_url: str | None = None,
        callback_secret: str | None = None,
    ) -> dict[str, Any]:
        """Celery's `apply_async`: `countdown` seconds or `eta` delay it."""
        # Arguments that cannot fit are refused here, as calling would.
        inspect.signature(self.function).bind(*args, **(kwargs or {}))
        payload = {"name": self.name, "args": {"args": list(args), "kwargs": dict(kwargs or {})}}
        return self.app.client.submit(
            "task",
            payload,
            delay_seconds=countdown,
            run_at=eta,
            priority=priority,
            metadata=metadata,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
            callback_url=callback_url,
            callback_secret=callback_secret,
        )


class TaskApp:
    """The tasks of one app, the secret Peyk signs their calls with, and
    the client that queues them (built from `PEYK_URL`/`PEYK_API_KEY` when
    first needed, unless given)."""

    def __init__(self, secret: str | None = None, client: Peyk | None = None) -> None:
        self._secret = secret
        self._client = client
        self.tasks: dict[str, Task[Any, Any]] = {}

    @property
    def secret(self) -> str:
        """The `whsec_` secret (the environment's `PEYK_TASK_SECRET` unless given)."""
        if self._secret is None:
            self._secret = os.environ.get("PEYK_TASK_SECRET")
            if not self._secret:
                raise ValueError("TaskApp needs a secret (or PEYK_TASK_SECRET): the whsec_ secret Peyk signs task calls with")
        return self._secret

    @property
    def client(self) -> Peyk:
        if self._client is None:
            self._client = Peyk()
        return self._client

    def task(
        self, function: Callable[P, R] | None = None, *, name: str | None = None, **policy: int
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """`@tasks.task` or `@tasks.task(name="risk.recompute", max_attempts=3)`.
        The name defaults to `module.function`; `policy` (`timeout_seconds`,
        `max_attempts`, `min_backoff_seconds`, `max_backoff_seconds`) goes to
        the target at `register`."""

        def wrap(function: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            if task_name in self.tasks:
                raise ValueError(f"task {task_name!r} is registered twice")
            task: Task[P, R] = Task(self, function, task_name, policy)
            self.tasks[task_name] = task
            return task

        return wrap(function) if function is not None else wrap

    def register(self, url: str) -> list[dict[str, Any]]:
        """Creates or updates a task target per task, all at `url` (where
        the app serves `task_view`/`task_router`), signed with the secret."""
        return [self.client.task_targets.put(task.name, url, secret=self.secret, **task.policy) for task in self.tasks.values()]

    # -- the endpoint ------------------------------------------------------

    def prepare(self, body: bytes, headers: Mapping[str, str]) -> tuple[Task[Any, Any], list[Any], dict[str, Any]] | Answer:
        """Checks a call from Peyk: the task and its bound arguments, or the
        answer that refuses it."""
        try:
            verify(self.secret, headers, body)
        except InvalidSignature as problem:
            log.warning("refused a task call: %s", problem)
            return Answer(401, {"error": {"code": "invalid_signature", "message": str(problem)}})
        try:
            call = json.loads(body)
            task = self.tasks[call["task"]]
            args, kwargs = list(call["args"].get("args", [])), dict(call["args"].get("kwargs", {}))
            inspect.signature(task.function).bind(*args, **kwargs)
        except KeyError as missing:
            return _rejected("unknown_task", f"this app has no task {missing}")
        except (ValueError, TypeError, AttributeError) as wrong:
            return _rejected("invalid_arguments", str(wrong))
        return task, args, kwargs

    def answer(self, outcome: Callable[[], Any]) -> Answer:
        """Runs `outcome` (the task's call) and turns what it does into the answer."""
        try:
            value = outcome()
            json.dumps(value)
            return Answer(200, value)
        except TypeError as unserializable:
            return Answer(500, {"error": {"code": "result_not_json", "message": f"the task's return value is not JSON: {unserializable}"}})
        except Reject as rejected:
            return _rejected(rejected.code, rejected.message)
        except Retry as retry:
            headers = {"Retry-After": str(max(1, round(retry.after)))} if retry.after else {}
            return Answer(503, {"error": {"code": "retry", "message": retry.message}}, headers)
        except Exception as error:  # noqa: BLE001 — any other failure is retried by Peyk
            log.exception("task failed")
            return Answer(500, {"error": {"code": "task_error", "message": f"{type(error).__name__}: {error}"}})

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """The whole exchange for a synchronous framework (Django)."""
        prepared = self.prepare(body, headers)
        if isinstance(prepared, Answer):
            return prepared
        task, args, kwargs = prepared
        return self.answer(lambda: task.function(*args, **kwargs))


def _rejected(code: str, message: str) -> Answer:
    return Answer(422, {"error": {"code": code, "message": message}})


#: The app of `@peyk.task` (secret from `PEYK_TASK_SECRET`, client from
#: `PEYK_URL`/`PEYK_API_KEY`): serve it with `task_view(peyk.tasks)`.
tasks = TaskApp()


def task(function: Callable[P, R] | None = None, *, name: str | None = None, **policy: int) -> Any:
    """`@peyk.task`: `TaskApp.task` of the default app, `peyk.tasks`."""
    return tasks.task(function, name=name, **policy)
