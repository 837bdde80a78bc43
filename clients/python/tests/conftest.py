"""Shared by the tests: Django configured once for the process (an
in-memory SQLite database for transactions, the Peyk app installed), and a
real Django server (wsgiref) serving whatever views the tests add to
`urlpatterns`."""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import django
import pytest
from django.conf import settings

urls = types.ModuleType("peyk_test_urls")
urls.urlpatterns = []  # type: ignore[attr-defined]
sys.modules["peyk_test_urls"] = urls
settings.configure(
    ROOT_URLCONF="peyk_test_urls",
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="test",
    DEBUG=False,
    INSTALLED_APPS=["peyk.contrib.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    PEYK_URL=os.environ["PEYK_URL"],
    PEYK_API_KEY=os.environ["PEYK_API_KEY"],
)
django.setup()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: object, client_address: object) -> None:
        threading.Thread(target=self._handle, args=(request, client_address), daemon=True).start()

    def _handle(self, request: object, client_address: object) -> None:
        try:
            self.finish_request(request, client_address)  # type: ignore[arg-type]
        finally:
            self.shutdown_request(request)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def django_server() -> Iterator[str]:
    """The base URL of a Django server of `urls.urlpatterns`."""
    from django.core.wsgi import get_wsgi_application

    server = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=_ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
