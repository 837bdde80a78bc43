"""The API's resources as the client's namespaces (`client.jobs`,
`client.sms`, …). Each method describes its call once; the sync client
runs it and answers the value, the async client answers an awaitable of it.
Answers are the API's JSON records (`peyk.models` types them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from ._calls import MAX_WAIT_SECONDS, Call, drop_none, job_body

T = TypeVar("T")


class _Resource(Generic[T]):
    def __init__(self, run: Callable[[Call], T]) -> None:
        self._run = run


class Jobs(_Resource[T]):
    """`/v1/jobs`: submit, read, list, cancel, retry."""

    def submit(self, type: str, payload: dict[str, Any], **options: Any) -> T:
        """Any job type; `options` as `POST /v1/jobs` takes them
        (`idempotency_key`, `delay_seconds`, `run_at`, `priority`,
        `max_attempts`, `metadata`, `callback_url`, `callback_secret`)."""
        return self._run(Call("POST", "/v1/jobs", json=job_body(type, payload, **options)))

    def submit_many(self, jobs: Sequence[dict[str, Any]]) -> T:
        """Up to 1,000 submissions (each as `jobs.submit`'s body) in one
        request; every item answered on its own (`POST /v1/jobs/batch`)."""
        items = [job_body(**{"payload": {}, **job}) for job in jobs]
        return self._run(Call("POST", "/v1/jobs/batch", json={"jobs": items}))

    def get(self, job_id: str, *, wait: float | None = None) -> T:
        """The job; with `wait` (0–60 s), once it has ended or the time has passed."""
        wait = min(wait, MAX_WAIT_SECONDS) if wait else 0.0
        params = {"wait": f"{wait:g}"} if wait else None
        return self._run(Call("GET", f"/v1/jobs/{quote(job_id)}", params=params, holds=wait))

    def list(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        metadata: dict[str, str] | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        idempotency_key: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> T:
        """A page of jobs, newest first (`next_cursor` for the next; a page
        filtered by type or status may be short, even empty, while it is set).
        `created_after`, `created_before`: RFC 3339 times."""
        params = drop_none(
            {
                "type": type,
                "status": status,
                "created_after": created_after,
                "created_before": created_before,
                "idempotency_key": idempotency_key,
                "limit": str(limit) if limit else None,
                "cursor": cursor,
            }
        )
        params.update({f"metadata[{key}]": value for key, value in (metadata or {}).items()})
        return self._run(Call("GET", "/v1/jobs", params=params))

    def cancel(self, job_id: str) -> T:
        return self._run(Call("POST", f"/v1/jobs/{quote(job_id)}/cancel"))

    def retry(self, job_id: str) -> T:
        return self._run(Call("POST", f"/v1/jobs/{quote(job_id)}/retry"))

    def erase(self, job_id: str) -> T:
        """Erases a finished job's content (payload, result, messages, its uploads);
        answers the bare record that stays and what went."""
        return self._run(Call("DELETE", f"/v1/jobs/{quote(job_id)}"))

    def attempts(self, job_id: str) -> T:
        return self._run(Call("GET", f"/v1/jobs/{quote(job_id)}/attempts"))


class Pipelines(_Resource[T]):
    """`/v1/pipelines`: steps that run one after another (Celery's `chain`)."""

    def submit(self, steps: Sequence[dict[str, Any]], *, metadata: dict[str, str] | None = None) -> T:
        """`steps`: `{"type", "payload"}` each; a payload field may be
        `{"from": "steps.0.result.text"}`."""
        return self._run(Call("POST", "/v1/pipelines", json=drop_none({"steps": list(steps), "metadata": metadata})))

    def get(self, pipeline_id: str, *, wait: float | None = None) -> T:
        wait = min(wait, MAX_WAIT_SECONDS) if wait else 0.0
        params = {"wait": f"{wait:g}"} if wait else None
        return self._run(Call("GET", f"/v1/pipelines/{quote(pipeline_id)}", params=params, holds=wait))

    def cancel(self, pipeline_id: str) -> T:
        return self._run(Call("POST", f"/v1/pipelines/{quote(pipeline_id)}/cancel"))


class Sms(_Resource[T]):
    """`sms` jobs through Kavenegar (or the development outbox)."""

    def send(self, receptors: str | Sequence[str], message: str, *, sender: str | None = None, **options: Any) -> T:
        """One text to one or more numbers."""
        numbers = [receptors] if isinstance(receptors, str) else list(receptors)
        payload = drop_none({"mode": "send", "receptors": numbers, "message": message, "sender": sender})
        return self._run(Call("POST", "/v1/jobs", json=job_body("sms", payload, **options)))

    def lookup(self, receptor: str, *, template: str, token: str, call: bool = False, **tokens_and_options: Any) -> T:
        """An approved template (an OTP code, a reminder); `token2`, `token3`,
        `token10`, `token20` go to the template, the rest are job options.
        `call=True` reads it out by a voice call."""
        tokens = {name: tokens_and_options.pop(name) for name in ("token2", "token3", "token10", "token20") if name in tokens_and_options}
        payload = {"mode": "call" if call else "lookup", "receptor": receptor, "template": template, "token": token, **tokens}
        return self._run(Call("POST", "/v1/jobs", json=job_body("sms", payload, **tokens_and_options)))

    def outbox(self, *, limit: int | None = None) -> T:
        """The development outbox (no `PEYK_KAVENEGAR_API_KEY` on the workers)."""
        return self._run(Call("GET", "/v1/sms/outbox", params=drop_none({"limit": str(limit) if limit else None})))


class Webhooks(_Resource[T]):
    """`webhook` jobs: one signed POST of a JSON body."""

    def send(
        self,
        url: str,
        body: Any,
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        event_type: str | None = None,
        timeout_seconds: int | None = None,
        **options: Any,
    ) -> T:
        payload = drop_none(
            {"url": url, "body": body, "secret": secret, "headers": headers, "event_type": event_type, "timeout_seconds": timeout_seconds}
        )
        return self._run(Call("POST", "/v1/jobs", json=job_body("webhook", payload, **options)))


class Email(_Resource[T]):
    """`email` jobs: a template (built-in or the tenant's) or a one-off message."""

    def send(
        self,
        to: str | Sequence[str],
        *,
        template: str | None = None,
        variables: dict[str, Any] | None = None,
        language: str | None = None,
        subject: str | None = None,
        html: str | None = None,
        text: str | None = None,
        sender: str | None = None,
        cc: Sequence[str] | None = None,
        bcc: Sequence[str] | None = None,
        reply_to: str | None = None,
        **options: Any,
    ) -> T:
        payload = drop_none(
            {
                "to": [to] if isinstance(to, str) else list(to),
                "cc": list(cc) if cc else None,
                "bcc": list(bcc) if bcc else None,
                "reply_to": reply_to,
                "from": sender,
                "template": template,
                "variables": variables,
                "language": language,
                "subject": subject,
                "html": html,
                "text": text,
            }
        )
        return self._run(Call("POST", "/v1/jobs", json=job_body("email", payload, **options)))


class Medical(_Resource[T]):
    """`medical_analysis` jobs (identifiers redacted before the text leaves)."""

    def analyze(self, text: str, *, kind: str = "summary", language: str | None = None, **payload_and_options: Any) -> T:
        """`kind`: the analysis type (`summary`, `soap`, `triage`, …)."""
        payload_fields = ("patient_context", "max_tokens", "temperature")
        extra = {name: payload_and_options.pop(name) for name in payload_fields if name in payload_and_options}
        payload = drop_none({"text": text, "analysis_type": kind, "language": language, **extra})
        return self._run(Call("POST", "/v1/jobs", json=job_body("medical_analysis", payload, **payload_and_options)))


class Files(_Resource[T]):
    """`/v1/files`: uploads (audio for transcription, attachments)."""

    def upload(self, name: str, content: bytes, content_type: str = "application/octet-stream") -> T:
        return self._run(Call("POST", "/v1/files", files={"file": (name, content, content_type)}))

    def get(self, file_id: str) -> T:
        return self._run(Call("GET", f"/v1/files/{quote(file_id)}"))

    def delete(self, file_id: str) -> T:
        """Erases the file's bytes, name and hash; answers the bare record that stays."""
        return self._run(Call("DELETE", f"/v1/files/{quote(file_id)}"))


class TaskTargets(_Resource[T]):
    """`/v1/task-targets`: the app's own endpoints that `task` jobs call."""

    def put(self, name: str, url: str, *, secret: str | None = None, **policy: int) -> T:
        """`policy`: `timeout_seconds`, `max_attempts`, `min_backoff_seconds`, `max_backoff_seconds`."""
        return self._run(Call("PUT", f"/v1/task-targets/{quote(name)}", json=drop_none({"url": url, "secret": secret, **policy})))

    def get(self, name: str) -> T:
        return self._run(Call("GET", f"/v1/task-targets/{quote(name)}"))

    def list(self) -> T:
        return self._run(Call("GET", "/v1/task-targets"))

    def delete(self, name: str) -> T:
        return self._run(Call("DELETE", f"/v1/task-targets/{quote(name)}", empty=True))


class WebhookEndpoints(_Resource[T]):
    """`/v1/webhook-endpoints`: where Peyk sends the tenant's events."""

    def create(self, url: str, *, event_types: Sequence[str] | None = None, secret: str | None = None, description: str | None = None) -> T:
        """Answers the endpoint with its secret (generated when not given)."""
        body = drop_none(
            {"url": url, "event_types": list(event_types) if event_types else None, "secret": secret, "description": description}
        )
        return self._run(Call("POST", "/v1/webhook-endpoints", json=body))

    def list(self) -> T:
        return self._run(Call("GET", "/v1/webhook-endpoints"))

    def delete(self, endpoint_id: str) -> T:
        return self._run(Call("DELETE", f"/v1/webhook-endpoints/{quote(endpoint_id)}", empty=True))


class Namespaces:
    """The namespaces of a client, each running its calls through `run`."""

    def _attach(self, run: Callable[[Call], Any]) -> None:
        self.jobs: Jobs[Any] = Jobs(run)
        self.pipelines: Pipelines[Any] = Pipelines(run)
        self.sms: Sms[Any] = Sms(run)
        self.webhooks: Webhooks[Any] = Webhooks(run)
        self.email: Email[Any] = Email(run)
        self.medical: Medical[Any] = Medical(run)
        self.files: Files[Any] = Files(run)
        self.task_targets: TaskTargets[Any] = TaskTargets(run)
        self.webhook_endpoints: WebhookEndpoints[Any] = WebhookEndpoints(run)


def transcription_call(file_id: str, language: str | None, model: str | None, options: dict[str, Any]) -> Call:
    """The `transcription` job of an uploaded file; `options` holds payload
    fields (`prompt`, `translate`, `timestamps`, `temperature`) and job options."""
    payload_fields = ("prompt", "translate", "timestamps", "temperature")
    extra = {name: options.pop(name) for name in payload_fields if name in options}
    payload = drop_none({"file_id": file_id, "language": language, "model": model, **extra})
    return Call("POST", "/v1/jobs", json=job_body("transcription", payload, **options))
