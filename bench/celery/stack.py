"""The Celery + FastAPI stack that Peyk replaces, for bench/celery.sh.

What the apps that move to Peyk run today, set up as their documentation
recommends: a FastAPI endpoint validates the job with pydantic and queues it
with `apply_async` (Redis broker); a Celery worker at its default settings
(prefork, one process per core) runs the task, which POSTs the webhook with
`requests` and keeps the result in the Redis result backend (database 1, so
that the benchmark counts finished tasks with DBSIZE). It accepts the same
body as Peyk's `POST /v1/jobs` for a `webhook` job, so the same wrk script
drives both.
"""

import os
from typing import Any, Literal

import requests
from celery import Celery
from fastapi import FastAPI
from pydantic import BaseModel, HttpUrl

redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
celery = Celery("stack", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
celery.conf.update(
    task_serializer="json", result_serializer="json", accept_content=["json"]
)

# One connection pool per worker process, as a tuned task would keep.
session = requests.Session()


@celery.task(bind=True, max_retries=5)
def deliver_webhook(self, url: str, body: dict[str, Any]) -> int:
    try:
        response = session.post(url, json=body, timeout=10)
        response.raise_for_status()
    except requests.RequestException as error:
        raise self.retry(exc=error, countdown=2**self.request.retries)
    return response.status_code


class WebhookPayload(BaseModel):
    url: HttpUrl
    body: dict[str, Any] = {}


class Job(BaseModel):
    type: Literal["webhook"]
    payload: WebhookPayload


api = FastAPI()


@api.post("/v1/jobs", status_code=202)
def submit(job: Job) -> dict[str, str]:
    # A sync endpoint: FastAPI runs it in its thread pool, so the blocking
    # Redis call of apply_async does not hold the event loop.
    task = deliver_webhook.apply_async(args=[str(job.payload.url), job.payload.body])
    return {"id": task.id, "status": "queued"}
