"""`manage.py peyk_check`: can this app reach Peyk, and is its key valid?"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from peyk.contrib.django import client
from peyk.errors import PeykError, Unauthorized


class Command(BaseCommand):
    help = "Checks that Peyk answers and that PEYK_API_KEY is valid"

    def handle(self, *args: Any, **options: Any) -> None:
        peyk = client()
        try:
            peyk.jobs.list(limit=1)
        except Unauthorized as refused:
            raise CommandError(f"Peyk at {peyk.settings.base_url} refuses the key: {refused.message}") from None
        except PeykError as failed:
            raise CommandError(f"Peyk at {peyk.settings.base_url} answered {failed.status} {failed.code}: {failed.message}") from None
        except Exception as unreachable:  # noqa: BLE001 — a connection failure of any kind
            raise CommandError(f"Peyk at {peyk.settings.base_url} is unreachable: {unreachable}") from None
        self.stdout.write(f"Peyk at {peyk.settings.base_url}: reachable, key valid")
