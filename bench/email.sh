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
source bench/lib.sh

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
bench_services "$state" "$PG_PORT" "$REDIS_PORT"
bench_build "$PROFILE"
bench_database peyk_bench
export PEYK_BENCH_KEY=$key

# smtp-sink accepts and discards; as root it must drop to a user (-u).
# 256: its listen backlog.
sink_user=(); [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
/usr/sbin/smtp-sink "${sink_user[@]}" "127.0.0.1:$SMTP_PORT" 256 >/dev/null 2>&1 & pids+=($!)
bench_start_api "$API_PORT"

echo "==> 1. submission: $CONNECTIONS connections, ${DURATION}s"
out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/submit_email.lua "http://127.0.0.1:$API_PORT/v1/jobs")
echo "$out"
if echo "$out" | grep -q "Non-2xx"; then echo "!! some submissions were refused"; fi
jobs=$(sql "SELECT count(*) FROM jobs")

echo "==> 2. delivery: one worker sends $jobs emails to smtp-sink on :$SMTP_PORT"
started=$(date +%s.%N)
PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_QUEUES=email PEYK_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" \
  PEYK_EMAIL_FROM="Peyk Bench <bench@peyk.test>" PEYK_SMTP_POOL_SIZE=${SMTP_POOL_SIZE:-64} \
  PEYK_CONCURRENCY=${WORKER_CONCURRENCY:-128} "$bin/peyk-worker" & worker=$!; pids+=("$worker")
while [ "$(sql "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'dead')")" -lt "$jobs" ]; do
  kill -0 "$worker" 2>/dev/null || { echo "!! the worker exited" >&2; exit 1; }
  sleep 0.2
done
finished=$(date +%s.%N)
worker_rss=$(peak_rss_mb "$worker")
failed=$(sql "SELECT count(*) FROM jobs WHERE status <> 'succeeded'")

rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
rate=$(echo "$jobs $started $finished" | awk '{printf "%.0f", $1 / ($3 - $2)}')
verdict=$([ "$rate" -ge 500 ] && echo "meets the 500/s target" || echo "BELOW the 500/s target")
cat <<SUMMARY

== Peyk email benchmark ($(nproc) cores, $PROFILE build) ==
submissions over HTTP : $rps jobs/s at $CONNECTIONS connections
emails sent (1 worker): $rate emails/s ($jobs jobs; $failed not succeeded) — $verdict
peak memory           : worker ${worker_rss} MiB
SUMMARY
