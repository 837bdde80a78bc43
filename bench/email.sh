#!/usr/bin/env bash
# The email benchmark (README, "Benchmarks"): how many emails one worker
# sends per second to a local SMTP server.
#   1. submission: wrk POSTs email jobs (the built-in Persian appointment
#      reminder) to /v1/jobs for $DURATION s while no worker runs;
#   2. delivery: one worker renders and sends every job over pooled SMTP
#      connections to Postfix's smtp-sink (a C SMTP server that accepts and
#      discards: Python's aiosmtpd would be the bottleneck, not Peyk).
# Target: at least 500 emails/s. API, worker, PostgreSQL (fsync on), Redis
# (AOF on) and the sink all run on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source infrastructure/dev/services.sh

DURATION=${DURATION:-10}
# release for the figures; PEYK_BENCH_PROFILE=debug only checks the script.
PROFILE=${PEYK_BENCH_PROFILE:-release}
CONNECTIONS=${CONNECTIONS:-32}
# Ports of its own, so that it can run beside bench/run.sh and the tests.
PG_PORT=54359 REDIS_PORT=63829 API_PORT=18081 WORKER_PORT=19092 SMTP_PORT=12525
state="$root/.peyk/bench-email"

ensure_packages wrk
if [ ! -x /usr/sbin/smtp-sink ]; then
  echo "==> installing postfix (for /usr/sbin/smtp-sink; the postfix service itself is not started)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
start_postgres "$state" "$PG_PORT"
start_redis "$state" "$REDIS_PORT"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Let the worker hand its entries back before Redis goes.
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_services "$state" "$REDIS_PORT"
}
trap cleanup EXIT

echo "==> building ($PROFILE)"
if [ "$PROFILE" = release ]; then cargo build --release --quiet --bins -p peyk-api -p peyk-worker; else cargo build --quiet --bins -p peyk-api -p peyk-worker; fi
bin="${CARGO_TARGET_DIR:-$root/target}/$PROFILE"

export PGOPTIONS="-c client_min_messages=warning"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS peyk_bench" postgres
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE peyk_bench" postgres
redis-cli -p "$REDIS_PORT" flushall >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/peyk_bench" REDIS_URL PEYK_LOG_FORMAT=json RUST_LOG=warn
"$bin/peyk-api" migrate 2>/dev/null
PEYK_BENCH_KEY=$("$bin/peyk-api" create-key --tenant bench)
export PEYK_BENCH_KEY

peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
count() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "$1" peyk_bench; }

# smtp-sink accepts and discards; as root it must drop to a user (-u).
# 256: its listen backlog.
sink_user=(); [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
/usr/sbin/smtp-sink "${sink_user[@]}" "127.0.0.1:$SMTP_PORT" 256 >/dev/null 2>&1 & pids+=($!)
PEYK_API_ADDR="127.0.0.1:$API_PORT" "$bin/peyk-api" & api=$!; pids+=($api)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$API_PORT/healthz" >/dev/null && break; sleep 0.1; done

echo "==> 1. submission: $CONNECTIONS connections, ${DURATION}s"
out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/submit_email.lua "http://127.0.0.1:$API_PORT/v1/jobs")
echo "$out"
if echo "$out" | grep -q "Non-2xx"; then echo "!! some submissions were refused"; fi
jobs=$(count "SELECT count(*) FROM jobs")

echo "==> 2. delivery: one worker sends $jobs emails to smtp-sink on :$SMTP_PORT"
started=$(date +%s.%N)
PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_QUEUES=email PEYK_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" \
  PEYK_EMAIL_FROM="Peyk Bench <bench@peyk.test>" PEYK_SMTP_POOL_SIZE=${SMTP_POOL_SIZE:-64} \
  PEYK_CONCURRENCY=${WORKER_CONCURRENCY:-128} "$bin/peyk-worker" & worker=$!; pids+=($worker)
while [ "$(count "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'dead')")" -lt "$jobs" ]; do
  kill -0 "$worker" 2>/dev/null || { echo "!! the worker exited" >&2; exit 1; }
  sleep 0.2
done
finished=$(date +%s.%N)
worker_rss=$(peak_rss_mb "$worker")
failed=$(count "SELECT count(*) FROM jobs WHERE status <> 'succeeded'")

rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
rate=$(echo "$jobs $started $finished" | awk '{printf "%.0f", $1 / ($3 - $2)}')
verdict=$([ "$rate" -ge 500 ] && echo "meets the 500/s target" || echo "BELOW the 500/s target")
cat <<SUMMARY

== Peyk email benchmark ($(nproc) cores, $PROFILE build) ==
submissions over HTTP : $rps jobs/s at $CONNECTIONS connections
emails sent (1 worker): $rate emails/s ($jobs jobs; $failed not succeeded) — $verdict
peak memory           : worker ${worker_rss} MiB
SUMMARY
