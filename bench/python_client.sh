#!/usr/bin/env bash
# The Python client benchmark (README, "Benchmarks"): JOBS (default 10,000)
# `webhook` submissions from one Python process through peyk.AsyncPeyk and
# through raw httpx, IN_FLIGHT ("16 64") calls in flight, ROUNDS (3) rounds
# each, alternating, then in 1,000-job batches, against a release API on
# this machine (PostgreSQL fsync on, Redis AOF on, no worker: only submission
# is measured). Reports jobs/s of both, their ratio and the client's
# overhead per call (bench/python_client.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

PG_PORT=${PEYK_BENCH_PG_PORT:-54349} REDIS_PORT=${PEYK_BENCH_REDIS_PORT:-63819}
API_PORT=18080
state="$root/.peyk/bench"

bench_services "$state" "$PG_PORT" "$REDIS_PORT"
bench_build release
bench_database peyk_bench
bench_start_api "$API_PORT"

venv="$root/.peyk/venv"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import peyk, sniffio" 2>/dev/null || "$venv/bin/pip" install -q -e clients/python "httpx==0.29.0" "sniffio==1.3.1"
echo "==> $(nproc) cores; $(git rev-parse --short HEAD)"
PEYK_URL="http://127.0.0.1:$API_PORT" PEYK_API_KEY="$key" "$venv/bin/python" bench/python_client.py
echo "==> jobs stored: $(sql 'SELECT count(*) FROM jobs')"
