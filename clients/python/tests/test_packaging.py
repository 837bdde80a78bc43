"""The package as a user gets it: `python -m build` makes a wheel (typed:
`py.typed` inside), which installs into a fresh virtual environment and
imports, with its Django and FastAPI modules."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_builds_installs_in_a_fresh_venv_and_imports(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True
    )
    (wheel,) = (tmp_path / "dist").glob("peyk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"peyk/py.typed", "peyk/models.py", "peyk/contrib/django/management/commands/peyk_check.py", "peyk/contrib/fastapi.py"} <= set(
        names
    )
    assert not [name for name in names if name.startswith("tests/") or "__pycache__" in name]

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    imported = subprocess.run(
        [
            str(python),
            "-c",
            "import peyk, peyk.models, peyk.webhooks; print(peyk.__version__, peyk.Peyk.__name__, peyk.AsyncPeyk.__name__)",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert imported.stdout.split() == ["0.1.0", "Peyk", "AsyncPeyk"]


def test_the_package_is_versioned_with_peyk() -> None:
    import tomllib

    import peyk

    cargo = tomllib.loads((ROOT.parent.parent / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cargo == project == peyk.__version__
