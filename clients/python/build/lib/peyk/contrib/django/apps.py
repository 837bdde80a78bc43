"""The Django app (`INSTALLED_APPS += ["peyk.contrib.django"]`): its system
check and the `peyk_check` command."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class PeykConfig(AppConfig):
    name = "peyk.contrib.django"
    label = "peyk"
    verbose_name = "Peyk"

    def ready(self) -> None:
        checks.register(check_settings, checks.Tags.compatibility)


def check_settings(**_: Any) -> list[checks.CheckMessage]:
    """PEYK_URL and PEYK_API_KEY must be set (in the settings or the environment)."""
    import os

    errors: list[checks.CheckMessage] = []
    for name, error_id in (("PEYK_URL", "peyk.E001"), ("PEYK_API_KEY", "peyk.E002")):
        if not (getattr(settings, name, None) or os.environ.get(name)):
            errors.append(checks.Error(f"{name} is not set", hint=f"set {name} in settings.py or the environment", id=error_id))
    return errors
