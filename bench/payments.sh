#!/usr/bin/env bash
# The payments benchmark (README, "Benchmarks"):
#   1. callbacks: RATE Zarinpal callbacks a second for DURATION s (open
#      loop) against the API, each for a registered payment, each recorded
#      and queuing a verification; no worker running: the API's latency;
#   2. verification: a worker verifies them all against a local gateway
#      answering after GATEWAY_DELAY_MS; Peyk's overhead per verification is
#      the attempt's duration minus that delay.
# API, worker, PostgreSQL (fsync on) and Redis (AOF on) all run on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source infrastructure/dev/services.sh

RATE=${RATE:-1000}
DURATION=${DURATION:-20}
GATEWAY_DELAY_MS=${GATEWAY_DELAY_MS:-50}
PG_PORT=${PEYK_BENCH_PG_PORT:-54349} REDIS_PORT=${PEYK_BENCH_REDIS_PORT:-63819}
API_PORT=18080 WORKER_PORT=19091 SINK_PORT=19999
state="$root/.peyk/bench"
count=$((RATE * DURATION))

start_postgres "$state" "$PG_PORT"
start_redis "$state" "$REDIS_PORT"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_services "$state" "$REDIS_PORT"
}
trap cleanup EXIT

echo "==> building (release)"
cargo build --release --quiet --bins -p peyk-api -p peyk-worker -p peyk-bench
bin="$root/target/release"

export PGOPTIONS="-c client_min_messages=warning"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS peyk_bench" postgres
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE peyk_bench" postgres
redis-cli -p "$REDIS_PORT" flushall >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/peyk_bench" REDIS_URL PEYK_LOG_FORMAT=json RUST_LOG=warn
"$bin/peyk-api" migrate 2>/dev/null
key=$("$bin/peyk-api" create-key --tenant bench)
sql() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "$1" peyk_bench; }
tenant=$(sql "SELECT id FROM tenants WHERE name = 'bench'")

"$bin/peyk-bench-sink" "127.0.0.1:$SINK_PORT" >/dev/null & pids+=($!)
PEYK_API_ADDR="127.0.0.1:$API_PORT" "$bin/peyk-api" & api=$!; pids+=($api)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$API_PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -fs -X PUT "http://127.0.0.1:$API_PORT/v1/payment-accounts/zarinpal" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"credentials": {"merchant_id": "7f3c1a2e-5b4d-4e6f-8a9b-0c1d2e3f4a5b"}}' >/dev/null
# The payments the callbacks are for, registered as the shop would have.
sql "INSERT INTO payments (id, tenant_id, gateway, reference, order_id, amount, currency)
     SELECT gen_random_uuid(), '$tenant', 'zarinpal', 'A' || lpad(i::text, 35, '0'), 'order-' || i, 1500000, 'IRR'
     FROM generate_series(1, $count) AS i" >/dev/null
sql "VACUUM ANALYZE payments" >/dev/null

echo "==> 1. callbacks: $RATE/s for ${DURATION}s"
"$bin/peyk-bench-callbacks" "http://127.0.0.1:$API_PORT/v1/callbacks/zarinpal/$tenant" 200 2 >/dev/null  # warm-up (unregistered authorities 1…400 get recorded too)
sql "DELETE FROM inbound_events; DELETE FROM jobs" >/dev/null
redis-cli -p "$REDIS_PORT" flushall >/dev/null
callbacks=$("$bin/peyk-bench-callbacks" "http://127.0.0.1:$API_PORT/v1/callbacks/zarinpal/$tenant" "$RATE" "$DURATION")
echo "$callbacks"
api_rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$api/status")
events=$(sql "SELECT count(*) FROM inbound_events")
queued=$(sql "SELECT count(*) FROM jobs WHERE job_type = 'payment_verification'")

echo "==> 2. verification: $queued jobs, gateway answering after ${GATEWAY_DELAY_MS} ms"
started=$(date +%s.%N)
PEYK_BENCH_GATEWAY_DELAY_MS=$GATEWAY_DELAY_MS "$bin/peyk-bench-sink" "127.0.0.1:$((SINK_PORT + 1))" >/dev/null & pids+=($!)
PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_ZARINPAL_URL="http://127.0.0.1:$((SINK_PORT + 1))" PEYK_QUEUES=payment_verification \
  PEYK_CONCURRENCY=${WORKER_CONCURRENCY:-256} "$bin/peyk-worker" & worker=$!; pids+=($worker)
while [ "$(sql "SELECT count(*) FROM payments WHERE status <> 'pending'")" -lt "$queued" ]; do sleep 0.2; done
finished=$(date +%s.%N)
verified=$(sql "SELECT count(*) FROM payments WHERE status = 'verified'")
overhead=$(sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ms, p99 ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ms'
  FROM (SELECT extract(epoch FROM finished_at - started_at) * 1000 - $GATEWAY_DELAY_MS AS ms FROM job_attempts) AS a")
rate_done=$(echo "$queued $started $finished" | awk '{printf "%.0f", $1 / ($3 - $2)}')

cat <<SUMMARY

== Peyk payments benchmark ($(nproc) cores) ==
$callbacks
recorded              : $events events, $queued verification jobs queued (of $count callbacks)
verification          : $verified verified, $rate_done/s; Peyk's time on top of the gateway's ${GATEWAY_DELAY_MS} ms: p50 $overhead
peak memory           : API ${api_rss} MiB
SUMMARY
