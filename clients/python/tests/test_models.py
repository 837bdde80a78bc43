"""`peyk.models` is what `tools/generate_models.py` makes of the document
the running Peyk serves: regenerated here and compared, so that the
client's types and the API cannot drift apart."""

from __future__ import annotations

import difflib
import importlib.util
import os
import typing
from pathlib import Path

import httpx

import peyk.models

ROOT = Path(__file__).resolve().parent.parent


def test_the_models_are_those_of_the_served_document() -> None:
    spec = importlib.util.spec_from_file_location("generate_models", ROOT / "tools" / "generate_models.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    document = httpx.get(f"{os.environ['PEYK_URL']}/openapi.json").json()
    expected = generator.generate(document)
    committed = (ROOT / "src" / "peyk" / "models.py").read_text(encoding="utf-8")
    if committed != expected:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True), "models.py", "served"))[:60])
        raise AssertionError(
            f"peyk/models.py differs from the served document; run tools/generate_models.py $PEYK_URL/openapi.json > src/peyk/models.py\n{diff}"
        )


def test_every_model_resolves_and_the_main_ones_are_there() -> None:
    classes = [value for value in vars(peyk.models).values() if isinstance(value, type) and issubclass(value, dict) and value is not dict]
    for model in classes:
        typing.get_type_hints(model)  # every name a model uses exists
    names = {model.__name__ for model in classes}
    assert {"JobView", "PipelineView", "ScheduleView", "TaskTargetView", "ErrorBody", "WebhookJob", "TaskJob", "EmailJob"} <= names
    assert {"status", "result", "error", "metadata", "callback_url"} <= set(typing.get_type_hints(peyk.models.JobView))
