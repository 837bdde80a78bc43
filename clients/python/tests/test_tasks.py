"""The client and `@task` against a real Peyk (API and worker started by the
Rust harness, `tests/tests/e2e/python.rs`, which passes `PEYK_URL` and
`PEYK_API_KEY`), with the task endpoints served by real FastAPI (uvicorn)
and Django (wsgiref) servers on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import peyk
from peyk.contrib.fastapi import task_router
from peyk.webhooks import sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
client = peyk.Peyk()

# -- the FastAPI app's tasks ---------------------------------------------------

tasks = peyk.TaskApp(secret=SECRET, client=client)
calls: list[str] = []
flaky_calls: list[float] = []


@tasks.task
def rebuild_report(month: str, clinic: int, note: str = "") -> dict[str, object]:
    calls.append(month)
    return {"rows": 3, "month": month, "clinic": clinic, "note": note}


@tasks.task(name="risk.recompute", max_attempts=3, min_backoff_seconds=1, max_backoff_seconds=1)
def recompute(patient: int) -> float:
    if patient == 7:
        raise peyk.Reject("patient 7 is gone", code="no_such_patient")
    return 0.42


@tasks.task(name="lab.fetch", min_backoff_seconds=1, max_backoff_seconds=1)
def fetch_lab(order: str) -> str:
    flaky_calls.append(time.monotonic())
    if len(flaky_calls) == 1:
        raise peyk.Retry("the lab is busy", after=2)
    return f"results of {order}"


@tasks.task(name="notes.count_words")
async def count_words(text: str) -> dict[str, int]:
    return {"words": len(text.split())}


# -- the Django app's tasks ----------------------------------------------------

django_tasks = peyk.TaskApp(secret=SECRET, client=client)


@django_tasks.task(name="clinic.remind")
def remind(appointment: int) -> dict[str, int]:
    return {"reminded": appointment}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fastapi_url() -> Iterator[str]:
    app = FastAPI()
    app.include_router(task_router(tasks, path="/peyk/tasks"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/peyk/tasks"
    tasks.register(url)
    yield url
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def django_url(django_server: str) -> str:
    from django.urls import path

    from peyk.contrib.django import task_view
    from peyk_test_urls import urlpatterns  # type: ignore[import-not-found]

    urlpatterns.append(path("peyk/tasks", task_view(django_tasks)))
    url = f"{django_server}/peyk/tasks"
    django_tasks.register(url)
    return url


def test_delay_runs_the_function_and_its_return_value_is_the_result(fastapi_url: str) -> None:
    job = rebuild_report.delay("1405-09", clinic=12, note="ماهانه")
    assert job["status"] == "queued" and job["type"] == "task"
    done = client.wait(job["id"], timeout=30)
    assert done["status"] == "succeeded", done
    assert done["result"] == {"rows": 3, "month": "1405-09", "clinic": 12, "note": "ماهانه"}
    # Called directly, it is the plain function.
    assert rebuild_report("x", 1)["rows"] == 3


def test_reject_and_arguments_that_do_not_fit_fail_at_once(fastapi_url: str) -> None:
    done = client.wait(recompute.delay(7)["id"], timeout=30)
    assert (done["status"], done["attempts"], done["error"]["code"]) == ("failed", 1, "no_such_patient"), done
    assert "patient 7 is gone" in done["error"]["message"]
    with pytest.raises(TypeError):
        recompute.delay(1, 2)  # refused before it is queued
    # Sent anyway (another client): the endpoint refuses it for good.
    job = client.submit("task", {"name": "risk.recompute", "args": {"args": [1, 2], "kwargs": {}}})
    done = client.wait(job["id"], timeout=30)
    assert (done["status"], done["attempts"], done["error"]["code"]) == ("failed", 1, "invalid_arguments"), done


def test_retry_waits_as_long_as_the_task_asks(fastapi_url: str) -> None:
    done = client.wait(fetch_lab.delay("L-17")["id"], timeout=30)
    assert (done["status"], done["attempts"], done["result"]) == ("succeeded", 2, "results of L-17"), done
    assert flaky_calls[1] - flaky_calls[0] >= 1.9


def test_async_tasks_are_awaited(fastapi_url: str) -> None:
    done = client.wait(count_words.delay("سرفه از یک هفته پیش")["id"], timeout=30)
    assert done["result"] == {"words": 5}, done


def test_a_django_view_runs_its_tasks_and_countdown_delays_them(django_url: str) -> None:
    job = remind.apply_async((4242,), countdown=1, metadata={"appointment": "4242"})
    assert job["status"] == "scheduled"
    done = client.wait(job["id"], timeout=30)
    assert (done["status"], done["result"], done["metadata"]) == ("succeeded", {"reminded": 4242}, {"appointment": "4242"}), done


def test_a_call_without_peyks_signature_is_refused_and_runs_nothing(fastapi_url: str, django_url: str) -> None:
    before = len(calls)
    body = b'{"task": "tests.test_tasks.rebuild_report", "args": {"args": ["forged", 1]}, "job_id": "x", "attempt": 1}'
    forged = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": sign("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_1", int(time.time()), body),
    }
    for url in (fastapi_url, django_url):
        answer = httpx.post(url, content=body, headers=forged)
        assert answer.status_code == 401, answer.text
    assert len(calls) == before


def test_signatures_follow_the_standard() -> None:
    body, now = b'{"a": 1}', int(time.time())
    headers = {"Webhook-Id": "msg_2", "Webhook-Timestamp": str(now), "Webhook-Signature": "v1,Ym9ndXM= " + sign(SECRET, "msg_2", now, body)}
    assert verify(SECRET, headers, body) == "msg_2"
    with pytest.raises(peyk.InvalidSignature):
        verify(SECRET, headers, b'{"a": 2}')
    with pytest.raises(peyk.InvalidSignature):
        verify(SECRET, headers, body, now=now + 301)
    with pytest.raises(peyk.InvalidSignature):
        verify(SECRET, {**headers, "Webhook-Signature": "v1,not base64!"}, body)


def test_refusals_are_typed_errors_naming_the_field() -> None:
    with pytest.raises(peyk.PeykError) as refused:
        client.submit("webhook", {"url": "ftp://example.com", "body": {}})
    assert (refused.value.status, refused.value.code) == (422, "validation_failed")
    assert refused.value.fields[0]["field"] == "payload.url"
    with pytest.raises(peyk.PeykError) as unknown:
        client.submit("task", {"name": "no.such.task", "args": {}})
    assert (unknown.value.code, unknown.value.fields[0]["field"]) == ("unknown_task", "payload.name")


def test_peyk_task_registers_on_the_default_app(monkeypatch: pytest.MonkeyPatch) -> None:
    @peyk.task(name="default.app.task")
    def hello(name: str) -> str:
        return f"hello {name}"

    assert peyk.tasks.tasks["default.app.task"] is hello and hello("x") == "hello x"
    monkeypatch.setenv("PEYK_TASK_SECRET", SECRET)
    body = b'{"task": "default.app.task", "args": {"args": ["peyk"]}, "job_id": "j", "attempt": 1}'
    now = int(time.time())
    answer = peyk.tasks.handle(
        body, {"webhook-id": "msg_3", "webhook-timestamp": str(now), "webhook-signature": sign(SECRET, "msg_3", now, body)}
    )
    assert (answer.status, answer.body) == (200, "hello peyk")
