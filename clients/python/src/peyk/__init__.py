"""Peyk's Python client: submit jobs, wait for them, and run your own
functions as HTTP tasks from Django or FastAPI (`peyk.contrib.django`, `peyk.contrib.fastapi`)."""

from .aio import AsyncPeyk
from .client import Peyk
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PeykError,
    RateLimited,
    Reject,
    Retry,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from .webhooks import InvalidSignature, verify
from .tasks import Task, TaskApp, task, tasks

__all__ = [
    "AsyncPeyk",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InvalidSignature",
    "NotFound",
    "Peyk",
    "PeykError",
    "RateLimited",
    "Reject",
    "Retry",
    "Task",
    "TaskApp",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "task",
    "tasks",
    "verify",
]
__version__ = "0.1.0"
