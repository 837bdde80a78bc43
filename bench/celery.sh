#!/usr/bin/env bash
# The reference for bench/run.sh (README, "Benchmarks"): the Celery + FastAPI
# stack Peyk replaces (bench/celery/stack.py), measured the same way on the
# same machine:
#   1. submission: wrk, CONNECTIONS (32) connections, POST /v1/jobs with the
#      same webhook body for DURATION (20) s, no worker running; FastAPI under
#      uvicorn at its defaults (one process, uvloop and httptools, access log
#      on: written to a file) as the issue's figures were measured;
#      TUNED=1: one process per core and no access log;
#   2. delivery: a Celery worker at its default settings (prefork, one
#      process per core) drains every queued task to the same local sink;
#      finished = a result stored in the Redis result backend.
# Redis (AOF on, as for Peyk) is broker and result backend; PostgreSQL is
# started too (idle), so that the machine carries what it carries for Peyk.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
PG_PORT=${PEYK_BENCH_PG_PORT:-54349} REDIS_PORT=${PEYK_BENCH_REDIS_PORT:-63819}
API_PORT=18081 SINK_PORT=19998
state="$root/.peyk/bench"

ensure_packages wrk
bench_services "$state" "$PG_PORT" "$REDIS_PORT"
bench_build release # only the sink is used
venv="$root/.peyk/bench-celery"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r bench/celery/requirements.txt
redis-cli -p "$REDIS_PORT" flushall >/dev/null
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT" PYTHONPATH="$root/bench/celery"
export PEYK_BENCH_KEY=unused PEYK_BENCH_SINK="http://127.0.0.1:$SINK_PORT" PEYK_BENCH_JOB=webhook

"$bin/peyk-bench-sink" "127.0.0.1:$SINK_PORT" >/dev/null & pids+=($!)
if [ "${TUNED:-0}" = 1 ]; then web=(--workers "$(nproc)" --no-access-log) settings="$(nproc) web processes, no access log"
else web=() settings="uvicorn's defaults"; fi
"$venv/bin/uvicorn" stack:api --host 127.0.0.1 --port "$API_PORT" "${web[@]}" >"$state/celery-web.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$API_PORT/docs" && break; sleep 0.2; done

echo "==> 1. submission: $CONNECTIONS connections, ${DURATION}s"
wrk -t2 -c"$CONNECTIONS" -d3s -s bench/submit.lua "http://127.0.0.1:$API_PORT/v1/jobs" >/dev/null
out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/submit.lua "http://127.0.0.1:$API_PORT/v1/jobs")
echo "$out"
if echo "$out" | grep -q "Non-2xx"; then echo "!! some submissions were refused"; fi
queued=$(redis-cli -p "$REDIS_PORT" llen celery)

echo "==> 2. delivery: draining $queued tasks"
started=$(date +%s.%N)
"$venv/bin/celery" -A stack:celery worker --loglevel warning --without-heartbeat --without-gossip --without-mingle & worker=$!; pids+=("$worker")
while [ "$(redis-cli -p "$REDIS_PORT" -n 1 dbsize)" -lt "$queued" ]; do sleep 0.2; done
finished=$(date +%s.%N)
failed=$(redis-cli -p "$REDIS_PORT" -n 1 --scan --pattern 'celery-task-meta-*' | head -1000 \
  | xargs -r -n 100 redis-cli -p "$REDIS_PORT" -n 1 mget | grep -c '"status": "FAILURE"' || true)

rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
drain=$(echo "$queued $started $finished" | awk '{printf "%.0f", $1 / ($3 - $2)}')
cat <<SUMMARY

== Celery + FastAPI reference: webhook jobs ($(nproc) cores; web: $settings; worker at its defaults) ==
submissions over HTTP : $rps jobs/s at $CONNECTIONS connections, p50 $p50, p99 $p99
deliveries to sink    : $drain jobs/s ($queued tasks; $failed of the first 1,000 failed)
SUMMARY
