#!/usr/bin/env bash
# The platform-core benchmark (README, "Benchmarks"):
#   1. submission: wrk, 32 connections, POST /v1/jobs for $DURATION s, with no
#      worker running: throughput and latency percentiles of the API;
#   2. delivery: a worker starts and drains every submitted job to a local
#      HTTP sink: deliveries per second, at the worker's default settings
#      (WORKER_CONCURRENCY=N: PEYK_CONCURRENCY for this run).
# JOB picks the job type: `webhook` (default; delivered to the sink) or `sms`
# (`send` to one number, through the sink answering as Kavenegar does; each
# job also stores and queues its delivery-status check, scheduled past the
# end of the run). EVENTS=1 registers a webhook endpoint (the sink) for
# `job.succeeded`, so every job also stores an event and delivers it: the
# drain then counts until the events are delivered too. BATCH=N submits N
# jobs per request to /v1/jobs/batch instead (submission only; fewer
# connections suit it, e.g. BATCH=1000 CONNECTIONS=8).
# API, worker, PostgreSQL (fsync on) and Redis (AOF on) all run on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

JOB=${JOB:-webhook}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
BATCH=${BATCH:-}
PG_PORT=${PEYK_BENCH_PG_PORT:-54349} REDIS_PORT=${PEYK_BENCH_REDIS_PORT:-63819}
API_PORT=18080 WORKER_PORT=19091 SINK_PORT=19999
state="$root/.peyk/bench"

ensure_packages wrk
bench_services "$state" "$PG_PORT" "$REDIS_PORT"

bench_build release
bench_database peyk_bench
export PEYK_BENCH_KEY=$key PEYK_BENCH_SINK="http://127.0.0.1:$SINK_PORT" PEYK_BENCH_JOB=$JOB PEYK_BENCH_BATCH=$BATCH
path=/v1/jobs${BATCH:+/batch}

"$bin/peyk-bench-sink" "127.0.0.1:$SINK_PORT" >/dev/null & pids+=($!)
bench_start_api "$API_PORT"
if [ "${EVENTS:-0}" = 1 ]; then
  curl -fs "http://127.0.0.1:$API_PORT/v1/webhook-endpoints" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"url\": \"$PEYK_BENCH_SINK/events\", \"event_types\": [\"job.succeeded\"]}" >/dev/null
fi

echo "==> 1. submission: $CONNECTIONS connections, ${DURATION}s"
wrk -t2 -c"$CONNECTIONS" -d3s -s bench/submit.lua "http://127.0.0.1:$API_PORT$path" >/dev/null
before=$(sql "SELECT count(*) FROM jobs WHERE job_type = '$JOB'")
out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/submit.lua "http://127.0.0.1:$API_PORT$path")
echo "$out"
refused=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
if [ -n "$refused" ]; then echo "!! $refused submissions were refused"; fi
api_rss=$(peak_rss_mb "$api")
jobs=$(sql "SELECT count(*) FROM jobs WHERE job_type = '$JOB'")
# What was stored in the measured run over its duration is the rate (a
# refused request is no submission).
accepted=$(echo "$jobs $before $DURATION" | awk '{printf "%.0f", ($1 - $2) / $3}')
p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
if [ -n "$BATCH" ]; then
  echo
  echo "== Peyk bulk submission: $JOB jobs, $BATCH a request, $CONNECTIONS connections ($(nproc) cores) =="
  echo "jobs accepted over HTTP: $accepted jobs/s (request p50 $p50, p99 $p99); API peak memory ${api_rss} MiB"
  exit 0
fi

echo "==> 2. delivery: draining $jobs jobs"
started=$(date +%s.%N)
PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 \
  PEYK_KAVENEGAR_API_KEY=bench PEYK_KAVENEGAR_BASE_URL="$PEYK_BENCH_SINK" PEYK_SMS_STATUS_CHECK_SECONDS=3600 \
  env ${WORKER_CONCURRENCY:+PEYK_CONCURRENCY=$WORKER_CONCURRENCY} "$bin/peyk-worker" & worker=$!; pids+=("$worker")
# Polled from Redis, as bench/celery.sh polls its result backend: a job's
# task is acknowledged in its queue's done set once its outcome is
# committed. Not with a count over the jobs table: that count is a scan of
# every row, which took a tenth of the machine's CPU from the run it
# measures. Nor from the worker's metrics: curl and the worker rendering
# them five times a second took 2 % of the machine's samples (`perf`,
# 2026-12-07), where redis-cli takes a fraction of that. The database then
# confirms the count.
finished_jobs() {
  redis-cli -p "$REDIS_PORT" zcard "${PEYK_REDIS_PREFIX:-peyk}:$JOB:done" 2>/dev/null || echo 0
}
while [ "$(finished_jobs)" -lt "$jobs" ]; do sleep 0.2; done
while [ "$(sql "SELECT count(*) FROM jobs WHERE job_type = '$JOB' AND status = 'succeeded'")" -lt "$jobs" ]; do sleep 0.2; done
if [ "${EVENTS:-0}" = 1 ]; then
  while [ "$(sql "SELECT count(*) FROM jobs WHERE job_type = 'webhook_delivery' AND status = 'succeeded'")" -lt "$jobs" ]; do sleep 0.2; done
fi
finished=$(date +%s.%N)
worker_rss=$(peak_rss_mb "$worker")
failed=$(sql "SELECT count(*) FROM jobs WHERE job_type = '$JOB' AND status <> 'succeeded'")

drain=$(echo "$jobs $started $finished" | awk '{printf "%.0f", $1 / ($3 - $2)}')
cat <<SUMMARY

== Peyk platform-core benchmark: $JOB jobs ($(nproc) cores)$([ "${EVENTS:-0}" = 1 ] && echo ", each with a job.succeeded event delivered") ==
submissions over HTTP : $accepted jobs/s at $CONNECTIONS connections, p50 $p50, p99 $p99${refused:+ ($refused requests refused)}
deliveries to sink    : $drain jobs/s ($jobs jobs; $failed not succeeded)
peak memory           : API ${api_rss} MiB, worker ${worker_rss} MiB
SUMMARY
