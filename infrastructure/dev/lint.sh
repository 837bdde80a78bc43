#!/usr/bin/env bash
# The lint habits CI keeps (.ci/run runs this before the tests):
#   ShellCheck over every shell script, `cargo fmt --check` (rustfmt.toml),
#   `cargo clippy --all-targets -- -D warnings` ([workspace.lints] in Cargo.toml),
#   ruff (check and format) over the Python client (clients/python/pyproject.toml)
#   and the Celery reference stack of the benchmarks (bench/celery).
# Fix what it reports with `cargo fmt --all` and clippy's suggestions.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source infrastructure/dev/services.sh
# build-tools: clippy compiles the crates that build whisper.cpp and link libopus.
ensure_packages shellcheck build-tools

echo "==> shellcheck"
git ls-files -z '*.sh' .ci/run | xargs -0 shellcheck -x
echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> ruff (clients/python)"
RUFF_VERSION=0.14.0
lint_venv="$root/.peyk/lint"
[ -x "$lint_venv/bin/pip" ] || python3 -m venv "$lint_venv"
[ "$("$lint_venv/bin/ruff" --version 2>/dev/null)" = "ruff $RUFF_VERSION" ] || "$lint_venv/bin/pip" install -q "ruff==$RUFF_VERSION"
(cd clients/python && "$lint_venv/bin/ruff" check . && "$lint_venv/bin/ruff" format --check .)
"$lint_venv/bin/ruff" check bench/celery && "$lint_venv/bin/ruff" format --check bench/celery
echo "==> lint clean"
