"""Peyk's Python client: submit jobs, wait for them, and run your own
functions as HTTP tasks from Django or FastAPI (`peyk.contrib.django`, `peyk.contrib.fastapi`)."""

from .client import Peyk
from .errors import PeykError, Reject, Retry
from .webhooks import InvalidSignature, verify
from .tasks import Task, TaskApp

__all__ = ["InvalidSignature", "Peyk", "PeykError", "Reject", "Retry", "Task", "TaskApp", "verify"]
__version__ = "0.1.0"
