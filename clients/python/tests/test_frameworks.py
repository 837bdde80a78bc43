"""The Django and FastAPI integrations against a real Peyk: `submit_on_commit`
inside and outside a transaction (a rollback sends nothing), the system
check and `manage.py peyk_check`, and a job's callback received through
`webhook_view` (Django) and `verified_webhook` (FastAPI)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path

import peyk
import peyk.contrib.django as peyk_django
from peyk.contrib.django import client, on_commit, submit_on_commit, webhook_view

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
django_events: list[dict[str, Any]] = []


@webhook_view(secret=SECRET)
def django_callback(request: HttpRequest, event: dict[str, Any]) -> HttpResponse:
    django_events.append(event)
    return HttpResponse(status=204)


@pytest.fixture(scope="module")
def callback_url(django_server: str) -> str:
    from peyk_test_urls import urlpatterns  # type: ignore[import-not-found]

    urlpatterns.append(path("peyk/events", django_callback))
    return f"{django_server}/peyk/events"


def later(marker: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A webhook job for later, found again by its `metadata`."""
    return "webhook", {"url": "https://example.com/commit", "body": {}}, {"delay_seconds": 600, "metadata": {"commit": marker}}


def stored(marker: str) -> int:
    return len(client().jobs.list(metadata={"commit": marker})["data"])


def test_submit_on_commit_sends_after_the_commit_and_nothing_after_a_rollback() -> None:
    job_type, payload, options = later("committed")
    with transaction.atomic():
        submit_on_commit(job_type, payload, **options)
        assert stored("committed") == 0, "nothing is sent before the commit"
    assert stored("committed") == 1

    job_type, payload, options = later("rolled-back")
    with pytest.raises(RuntimeError), transaction.atomic():
        submit_on_commit(job_type, payload, **options)
        raise RuntimeError("the view failed")
    assert stored("rolled-back") == 0

    job_type, payload, options = later("autocommit")
    submit_on_commit(job_type, payload, **options)  # outside a transaction: at once
    assert stored("autocommit") == 1


def test_on_commit_queues_a_task_after_the_commit() -> None:
    tasks = peyk.TaskApp(secret=SECRET, client=client())

    @tasks.task(name="frameworks.noop")
    def noop(marker: str) -> str:
        return marker

    client().task_targets.put("frameworks.noop", "https://example.com/peyk/tasks", secret=SECRET)
    before = len(client().jobs.list(type="task")["data"])
    with transaction.atomic():
        on_commit(noop, "x")
        assert len(client().jobs.list(type="task")["data"]) == before
    assert len(client().jobs.list(type="task")["data"]) == before + 1


def test_the_system_check_and_peyk_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.checks import run_checks

    assert [m.id for m in run_checks() if m.id.startswith("peyk")] == []
    monkeypatch.delenv("PEYK_API_KEY")
    with override_settings(PEYK_API_KEY=None):
        assert [m.id for m in run_checks() if m.id.startswith("peyk")] == ["peyk.E002"]

    out = io.StringIO()
    call_command("peyk_check", stdout=out)
    assert "reachable, key valid" in out.getvalue()
    monkeypatch.setattr(peyk_django, "_client", peyk.Peyk(client().settings.base_url, "peyk_wrong"))
    with pytest.raises(CommandError, match="refuses the key"):
        call_command("peyk_check")


def wait_for(events: list[dict[str, Any]], count: int) -> None:
    deadline = time.monotonic() + 30
    while len(events) < count:
        assert time.monotonic() < deadline, f"{len(events)} of {count} callbacks arrived"
        time.sleep(0.05)


def test_a_jobs_callback_reaches_a_django_view_verified(callback_url: str) -> None:
    job = client().webhooks.send("http://10.1.2.3/refused", {}, callback_url=callback_url, callback_secret=SECRET)
    wait_for(django_events, 1)
    event = django_events[-1]
    assert (event["type"], event["data"]["id"], event["data"]["error_code"]) == ("job.failed", job["id"], "blocked_address")
    forged = httpx.post(
        callback_url,
        content=b"{}",
        headers={"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,Ym9ndXM="},
    )
    assert forged.status_code == 401 and len(django_events) == 1


@pytest.fixture(scope="module")
def fastapi_events() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    import threading

    import uvicorn
    from fastapi import Depends, FastAPI

    from peyk.contrib.fastapi import peyk_client, verified_webhook

    app, events = FastAPI(), []

    @app.post("/peyk/events", status_code=204)
    async def receive(event: dict[str, Any] = Depends(verified_webhook(SECRET))) -> None:
        events.append(event)

    @app.post("/notify")
    async def notify(peyk_async: peyk.AsyncPeyk = Depends(peyk_client)) -> dict[str, Any]:
        job: dict[str, Any] = await peyk_async.sms.send("09121112233", "از FastAPI")
        return job

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", events
    server.should_exit = True
    thread.join(5)


def test_fastapi_dependencies_give_a_client_and_verified_callbacks(fastapi_events: tuple[str, list[dict[str, Any]]]) -> None:
    base, events = fastapi_events
    job = httpx.post(f"{base}/notify").json()
    assert client().wait(job["id"], timeout=30)["status"] == "succeeded"
    webhook = client().webhooks.send("http://10.1.2.3/refused", {}, callback_url=f"{base}/peyk/events", callback_secret=SECRET)
    wait_for(events, 1)
    assert events[-1]["data"]["id"] == webhook["id"]
    assert httpx.post(f"{base}/peyk/events", content=b"{}").status_code == 401
