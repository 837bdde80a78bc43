"""Django integration.

# settings.py
INSTALLED_APPS = [..., "peyk.contrib.django"]   # the system check and `manage.py peyk_check`
PEYK_URL = "https://peyk.internal"              # or the environment's PEYK_URL
PEYK_API_KEY = env("PEYK_API_KEY")

# anywhere
from peyk.contrib.django import client, submit_on_commit, on_commit
client().sms.lookup("09121234567", template="verify", token="4821")
submit_on_commit("email", {...})                 # sent once the transaction commits
on_commit(rebuild_report, "1405-09", clinic=12)  # a @task, queued after the commit

# urls.py
urlpatterns = [path("peyk/tasks", task_view(tasks)), path("peyk/events", events)]

@webhook_view(secret=settings.PEYK_EVENTS_SECRET)   # Peyk's events and callbacks
def events(request, event): ...
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ...client import Peyk
from ...tasks import Task, TaskApp
from ...webhooks import InvalidSignature, verify

_client: Peyk | None = None
_client_lock = threading.Lock()


def client() -> Peyk:
    """The process's client, from `settings.PEYK_URL`/`PEYK_API_KEY` (the
    environment's when the settings do not say)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = Peyk(getattr(settings, "PEYK_URL", None), getattr(settings, "PEYK_API_KEY", None))
        return _client


def submit_on_commit(type: str, payload: dict[str, Any], *, using: str | None = None, **options: Any) -> str:
    """Submits the job once the current transaction commits (at once outside
    one); a rollback sends nothing. Answers the idempotency key, fixed now,
    to find the job later (`options` as `Peyk.submit`)."""
    options.setdefault("idempotency_key", f"py-{uuid.uuid4()}")
    transaction.on_commit(lambda: client().submit(type, payload, **options), using=using)
    return str(options["idempotency_key"])


def on_commit(task: Task[Any, Any], *args: Any, **kwargs: Any) -> None:
    """Celery's `delay_on_commit`: queues a `@task` once the transaction commits."""
    transaction.on_commit(lambda: task.delay(*args, **kwargs))


def task_view(app: TaskApp) -> Callable[[HttpRequest], HttpResponse]:
    """A view that runs `app`'s tasks for Peyk (signature checked; no CSRF
    token, since the signature is what authenticates the caller)."""

    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        answer = app.handle(request.body, dict(request.headers))
        response = HttpResponse(answer.content(), status=answer.status, content_type="application/json")
        for name, value in answer.headers.items():
            response[name] = value
        return response

    return view


def webhook_view(secret: str) -> Callable[[Callable[..., HttpResponse]], Callable[[HttpRequest], HttpResponse]]:
    """Decorates a view that receives Peyk's events or a job's callback: the
    request is verified (Standard Webhooks; `401` otherwise, the view not
    called) and the view gets the parsed event as `event`."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
        @csrf_exempt
        @require_POST
        @wraps(view)
        def verified(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                verify(secret, dict(request.headers), request.body)
            except InvalidSignature as problem:
                return JsonResponse({"error": {"code": "invalid_signature", "message": str(problem)}}, status=401)
            return view(request, *args, event=json.loads(request.body), **kwargs)

        return verified

    return decorate
