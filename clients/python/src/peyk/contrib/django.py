"""The task endpoint as a Django view.

    # urls.py
    from peyk.contrib.django import task_view
    from myapp.tasks import tasks          # a peyk.TaskApp

    urlpatterns = [path("peyk/tasks", task_view(tasks))]

then, once per deployment: `tasks.register("https://clinic.example/peyk/tasks")`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..tasks import TaskApp


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
