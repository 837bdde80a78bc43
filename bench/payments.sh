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
source bench/lib.sh

RATE=${RATE:-1000}
PHASES=${PHASES:-12}
DURATION=${DURATION:-20}
GATEWAY_DELAY_MS=${GATEWAY_DELAY_MS:-50}
PG_PORT=${PEYK_BENCH_PG_PORT:-54349} REDIS_PORT=${PEYK_BENCH_REDIS_PORT:-63819}
API_PORT=18080 WORKER_PORT=19091 SINK_PORT=19999
state="$root/.peyk/bench"
count=$((RATE * DURATION))

bench_services "$state" "$PG_PORT" "$REDIS_PORT"

bench_build release
bench_database peyk_bench
tenant=$(sql "SELECT id FROM tenants WHERE name = 'bench'")

"$bin/peyk-bench-sink" "127.0.0.1:$SINK_PORT" >/dev/null & pids+=($!)
# Every callback comes from this one load generator; in production they come
# from the payers' browsers, each its own address: the per-sender limit is
# lifted so that the benchmark measures the path, not the limit.
PEYK_PUBLIC_RATE_PER_MINUTE=1000000000 bench_start_api "$API_PORT"
curl -fs -X PUT "http://127.0.0.1:$API_PORT/v1/payment-accounts/zarinpal" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"credentials": {"merchant_id": "7f3c1a2e-5b4d-4e6f-8a9b-0c1d2e3f4a5b"}}' >/dev/null
# The payments the callbacks are for, registered as the shop would have.
sql "INSERT INTO payments (id, tenant_id, gateway, reference, order_id, amount, currency)
     SELECT gen_random_uuid(), '$tenant', 'zarinpal', 'A' || lpad(i::text, 35, '0'), 'order-' || i, 1500000, 'IRR'
     FROM generate_series(1, $count) AS i" >/dev/null
sql "VACUUM ANALYZE payments" >/dev/null

echo "==> 1. callbacks: $RATE/s for ${DURATION}s"
# Warm-up at the full rate (opens the client's connections); it records its
# callbacks too, which are then removed.
"$bin/peyk-bench-callbacks" "http://127.0.0.1:$API_PORT/v1/callbacks/zarinpal/$tenant" "$RATE" 3 >/dev/null
sql "DELETE FROM inbound_events; DELETE FROM job_attempts; DELETE FROM jobs;
     UPDATE payments SET verification_job_id = NULL, verification_queued_at = NULL, callbacks_stored = 0,
            verifications_window_start = NULL, verifications_in_window = 0
      WHERE verification_job_id IS NOT NULL OR callbacks_stored > 0" >/dev/null
# The measured phase starts on clean tables: without this, autovacuum would
# clean up after the warm-up during the measurement, on the same two cores.
sql "VACUUM ANALYZE payments, inbound_events, jobs" >/dev/null
redis-cli -p "$REDIS_PORT" flushall >/dev/null
callbacks=$("$bin/peyk-bench-callbacks" "http://127.0.0.1:$API_PORT/v1/callbacks/zarinpal/$tenant" "$RATE" "$DURATION")
echo "$callbacks"
api_rss=$(peak_rss_mb "$api")
# The API's own view (request in, answer out), from its histogram.
server_side=$(curl -fs "http://127.0.0.1:$API_PORT/metrics" | grep 'peyk_http_request_duration_seconds_bucket{method="GET",route="/v1/callbacks/{gateway}/{tenant}"' \
  | sed -E 's/.*le="([^"]+)"} ([0-9]+)/\1 \2/' | awk '
    { le[NR] = $1; c[NR] = $2; total = $2 }
    END { for (i = 1; i <= NR; i++) { if (!p50 && c[i] >= total * 0.5) p50 = le[i]; if (!p99 && c[i] >= total * 0.99) p99 = le[i] }
          printf "p50 <= %.1f ms, p99 <= %.1f ms (histogram bucket bounds)", p50 * 1000, p99 * 1000 }')
events=$(sql "SELECT count(*) FROM inbound_events")
queued=$(sql "SELECT count(*) FROM jobs WHERE job_type = 'payment_verification'")

if [ "$PHASES" = 1 ]; then echo "callbacks only: $callbacks"; echo "API-side latency: $server_side"; exit 0; fi
echo "==> 2. verification: $queued jobs, gateway answering after ${GATEWAY_DELAY_MS} ms"
PEYK_BENCH_GATEWAY_DELAY_MS=$GATEWAY_DELAY_MS "$bin/peyk-bench-sink" "127.0.0.1:$((SINK_PORT + 1))" >/dev/null & pids+=($!)
# Peyk's time on top of the gateway's, per attempt: from the claim to the
# recorded outcome, less the gateway's answer time the job measured.
overhead() {
  sql "SELECT 'p50 ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ms, p99 ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' ms ($1)'
    FROM (SELECT extract(epoch FROM a.finished_at - a.started_at) * 1000 - (j.result->>'gateway_ms')::float8 AS ms
          FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE a.finished_at IS NOT NULL AND j.result ? 'gateway_ms' AND $2) AS a"
}
start_worker() {
  PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_ZARINPAL_URL="http://127.0.0.1:$((SINK_PORT + 1))" PEYK_QUEUES=payment_verification \
    PEYK_CONCURRENCY=$1 "$bin/peyk-worker" & worker=$!; pids+=("$worker")
}
# a. One verification at a time for 10 s: the overhead itself.
start_worker 1
sleep 10
# The handler's own time (job duration less the gateway call), as a mean:
# what the runner's claim and outcome record add is the rest of the overhead.
handler=$(curl -fs "http://127.0.0.1:$WORKER_PORT/metrics" | awk '
  /^peyk_job_duration_seconds_sum\{type="payment_verification"\}/ {js = $2}
  /^peyk_job_duration_seconds_count\{type="payment_verification"\}/ {jc = $2}
  /^peyk_provider_request_duration_seconds_sum\{provider="zarinpal"\}/ {ps = $2}
  /^peyk_provider_request_duration_seconds_count\{provider="zarinpal"\}/ {pc = $2}
  END { if (jc > 0 && pc > 0) printf "%.2f ms", (js / jc - ps / pc) * 1000 }')
kill "$worker"; wait "$worker" 2>/dev/null || true
light=$(overhead "one at a time" "true")
mark=$(sql "SELECT coalesce(max(id), 0) FROM job_attempts")
# b. The rest at full concurrency: throughput, and the overhead under load.
before=$(sql "SELECT count(*) FROM payments WHERE status <> 'pending'")
started=$(date +%s.%N)
start_worker "${WORKER_CONCURRENCY:-256}"
while [ "$(sql "SELECT count(*) FROM payments WHERE status <> 'pending'")" -lt "$queued" ]; do sleep 0.2; done
finished=$(date +%s.%N)
curl -fs "http://127.0.0.1:$WORKER_PORT/metrics" | grep -E '^peyk_(provider_request_duration_seconds|job_duration_seconds)_(sum|count)' > "$state/worker-metrics.txt" || true
loaded=$(overhead "${WORKER_CONCURRENCY:-256} at a time" "a.id > $mark")
verified=$(sql "SELECT count(*) FROM payments WHERE status = 'verified'")
rate_done=$(echo "$((queued - before)) $started $finished" | awk '{printf "%.0f", $1 / ($3 - $2)}')

cat <<SUMMARY

== Peyk payments benchmark ($(nproc) cores) ==
$callbacks
API-side latency      : $server_side
recorded              : $events events, $queued verification jobs queued (of $count callbacks)
verification          : $verified verified; $rate_done/s at ${WORKER_CONCURRENCY:-256} at a time
Peyk's time on top of the gateway's ${GATEWAY_DELAY_MS} ms: $light; $loaded
  of which the job's own code, one at a time (mean): $handler
peak memory           : API ${api_rss} MiB
SUMMARY
