"""Every helper of the sync and async clients end to end against a real
Peyk (see `test_tasks.py` for how it is started): SMS to the outbox, a
webhook received and verified, an email through SMTP, a medical analysis
through the harness's LLM, a transcription of a real recording, a pipeline,
cancel and retry, and each error status as its typed exception."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import peyk
from peyk.webhooks import verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
client = peyk.Peyk()


class Receiver:
    """A local HTTP endpoint that records what it receives and answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def test_sms_goes_to_the_outbox() -> None:
    job = client.sms.send(["0912 123 4567"], "نوبت شما فردا ساعت ۹ است")
    done = client.wait(job["id"], timeout=30)
    assert (done["status"], done["result"]["provider"]) == ("succeeded", "outbox"), done
    otp = client.wait(client.sms.lookup("09351234567", template="verify", token="4821")["id"], timeout=30)
    assert otp["status"] == "succeeded", otp
    outbox = client.sms.outbox(limit=10)["data"]
    assert {m.get("template") for m in outbox} >= {"verify", None}
    assert outbox[0]["tokens"]["token"] == "4821"


def test_a_webhook_is_received_and_its_signature_verified(receiver: Receiver) -> None:
    job = client.webhooks.send(f"{receiver.url}/hooks", {"event": "report.ready", "text": "سلام"}, secret=SECRET, event_type="report.ready")
    assert client.wait(job["id"], timeout=30)["status"] == "succeeded"
    headers, body = receiver.received[-1]
    assert verify(SECRET, headers, body) == f"msg_{uuid.UUID(job['id']).hex}"
    assert json.loads(body) == {"event": "report.ready", "text": "سلام"}
    with pytest.raises(peyk.InvalidSignature):
        verify(SECRET, headers, body + b" ")


def test_email_and_medical_analysis_run_on_their_providers() -> None:
    email = client.email.send("patient@example.com", subject="نتیجه آزمایش", text="نتیجه آماده است.")
    assert client.wait(email["id"], timeout=30)["status"] == "succeeded"
    analysis = client.medical.analyze("Dry cough for three days, no fever.", kind="summary")
    done = client.wait(analysis["id"], timeout=60)
    assert (done["status"], done["result"]["analysis_type"]) == ("succeeded", "summary"), done


def test_transcribe_uploads_waits_and_answers_the_transcript() -> None:
    done = client.transcribe(os.environ["PEYK_TEST_AUDIO"], language="en", model="tiny.en")
    assert done["status"] == "succeeded", done
    assert "country" in done["result"]["text"].lower()


def test_a_pipeline_runs_its_steps_in_order(receiver: Receiver) -> None:
    pipeline = client.pipelines.submit(
        [
            {"type": "webhook", "payload": {"url": f"{receiver.url}/first", "body": {"n": 1}}},
            {"type": "webhook", "payload": {"url": f"{receiver.url}/second", "body": {"code": {"from": "steps.0.result.status_code"}}}},
        ],
        metadata={"visit": "v-9"},
    )
    done = client.pipelines.get(pipeline["id"], wait=30)
    assert done["status"] == "succeeded", done
    assert json.loads(receiver.received[-1][1]) == {"code": 200}


def test_cancel_and_retry(receiver: Receiver) -> None:
    later = client.webhooks.send(f"{receiver.url}/later", {}, delay_seconds=600)
    assert client.jobs.cancel(later["id"])["status"] == "cancelled"
    assert client.jobs.cancel(later["id"])["status"] == "cancelled", "cancelling is idempotent"
    with pytest.raises(peyk.Conflict):
        client.jobs.retry(later["id"])  # only failed or dead jobs are retried
    receiver.status = 410
    gone = client.wait(client.webhooks.send(f"{receiver.url}/gone", {})["id"], timeout=30)
    assert (gone["status"], gone["error"]["code"]) == ("failed", "http_410")
    receiver.status = 200
    client.jobs.retry(gone["id"])
    assert client.wait(gone["id"], timeout=30)["status"] == "succeeded"
    assert len(client.jobs.attempts(gone["id"])["data"]) == 2
    listed = client.jobs.list(metadata={"visit": "v-9"})["data"]
    assert len(listed) == 2 and all(job["metadata"] == {"visit": "v-9"} for job in listed)
    since = gone["created_at"]
    newer = client.jobs.list(created_after=since)["data"]
    assert gone["id"] in [job["id"] for job in newer] and later["id"] not in [job["id"] for job in newer]
    assert client.jobs.list(created_before=since, type="webhook")["data"][0]["id"] == later["id"]


def test_erase_leaves_the_bare_record(receiver: Receiver) -> None:
    upload = client.files.upload("notes.txt", b"visit notes")
    done = client.wait(client.webhooks.send(f"{receiver.url}/erase", {"note": "erase me"}, metadata={"visit": "v-erase"})["id"], timeout=30)
    erased = client.jobs.erase(done["id"])
    assert (erased["job"]["payload"], erased["job"]["metadata"], erased["job"]["status"]) == ({}, {}, "succeeded"), erased
    assert erased["job"]["erased_at"] and client.jobs.get(done["id"])["erased_at"] == erased["job"]["erased_at"]
    with pytest.raises(peyk.Conflict):
        client.jobs.retry(done["id"])  # nothing left to run
    later = client.webhooks.send(f"{receiver.url}/later", {}, delay_seconds=600)
    with pytest.raises(peyk.Conflict):
        client.jobs.erase(later["id"])  # not finished: cancel it first
    record = client.files.delete(upload["id"])
    assert (record["filename"], record["sha256"], record["size_bytes"]) == ("", "", 11) and record["erased_at"], record


def test_each_refusal_is_its_typed_error() -> None:
    with pytest.raises(peyk.Unauthorized):
        peyk.Peyk(api_key="peyk_wrong").jobs.list()
    with pytest.raises(peyk.NotFound):
        client.jobs.get(str(uuid.uuid4()))
    reader = peyk.Peyk(api_key=os.environ["PEYK_TEST_READ_ONLY_KEY"])
    assert reader.jobs.list()["data"] is not None
    with pytest.raises(peyk.Forbidden) as refused:
        reader.webhooks.send("https://example.com/a", {})
    assert (refused.value.code, refused.value.scope) == ("missing_scope", "jobs:write")
    client.webhooks.send("https://example.com/a", {"n": 1}, idempotency_key="same-key", delay_seconds=600)
    with pytest.raises(peyk.Conflict) as reused:
        client.webhooks.send("https://example.com/a", {"n": 2}, idempotency_key="same-key", delay_seconds=600)
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(peyk.ValidationFailed) as invalid:
        client.webhooks.send("ftp://example.com", {})
    assert invalid.value.fields == [{"field": "payload.url", "problem": invalid.value.fields[0]["problem"]}]
    impatient = peyk.Peyk(retries=0)
    impatient.sms.lookup("09127654321", template="verify", token="1")
    with pytest.raises(peyk.RateLimited) as limited:
        impatient.sms.lookup("09127654321", template="verify", token="2")
    assert limited.value.retry_after is not None and 50 <= limited.value.retry_after <= 60


def test_a_retried_submission_never_makes_two_jobs() -> None:
    body = {"url": "https://example.com/once", "body": {}}
    first = client.submit("webhook", body, idempotency_key="retried-1", delay_seconds=600)
    again = client.submit("webhook", body, idempotency_key="retried-1", delay_seconds=600)
    assert first["id"] == again["id"]


def test_the_async_client_does_the_same() -> None:
    async def run() -> None:
        async with peyk.AsyncPeyk() as aclient:
            jobs = await asyncio.gather(*(aclient.sms.send("09121110000", f"پیام {n}") for n in range(20)))
            done = await asyncio.gather(*(aclient.wait(job["id"], timeout=30) for job in jobs))
            assert {job["status"] for job in done} == {"succeeded"}
            transcript = await aclient.transcribe(os.environ["PEYK_TEST_AUDIO"], language="en", model="tiny.en")
            assert transcript["status"] == "succeeded"
            with pytest.raises(peyk.NotFound):
                await aclient.jobs.get(str(uuid.uuid4()))

    asyncio.run(run())


def test_a_call_imports_nothing() -> None:
    """A submission must not search for modules: httpcore tries
    `import sniffio` on every request, and without it installed each call
    scanned sys.path again (3.7 ms of CPU a call; pyproject.toml)."""
    lookups: list[str] = []

    class Counting:
        @staticmethod
        def find_spec(name: str, *_: object) -> None:
            lookups.append(name)

    async def run() -> None:
        async with peyk.AsyncPeyk() as aclient:
            await aclient.submit("webhook", {"url": "https://example.com/x", "body": {}}, delay_seconds=600)
            sys.meta_path.insert(0, Counting)  # type: ignore[arg-type]
            try:
                await asyncio.gather(
                    *(aclient.submit("webhook", {"url": "https://example.com/x", "body": {}}, delay_seconds=600) for _ in range(5))
                )
            finally:
                sys.meta_path.remove(Counting)  # type: ignore[arg-type]

    asyncio.run(run())
    assert lookups == []
