#!/usr/bin/env bash
# The fairness benchmark (README, "Benchmarks"): tenant `bench` queues
# BACKLOG webhook jobs (default 100,000, in batches of 1,000); a worker with
# default settings starts draining them to a local sink; once it is under
# way, tenant `clinic` submits 100 jobs, one every 20 ms. Reported: how long
# each clinic job waited from submission to its start (jobs.started_at -
# jobs.created_at, in PostgreSQL), p50/p99/max, and how much of the backlog
# was still waiting when the last one started (it must not have drained, or
# the figure says nothing). MIXED=1 gives the backlog's jobs priorities
# 0-10 at random (the clinic's stay at 0): priority must not buy a tenant
# more than its share.
# API, worker, PostgreSQL (fsync on) and Redis (AOF on) all run on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

BACKLOG=${BACKLOG:-100000}
MIXED=${MIXED:-0}
PG_PORT=${PEYK_BENCH_PG_PORT:-54349} REDIS_PORT=${PEYK_BENCH_REDIS_PORT:-63819}
API_PORT=18080 WORKER_PORT=19091 SINK_PORT=19999
state="$root/.peyk/bench"
sink="http://127.0.0.1:$SINK_PORT"

bench_services "$state" "$PG_PORT" "$REDIS_PORT"
bench_build release
bench_database peyk_bench
clinic=$("$bin/peyk-api" create-key --tenant clinic)
"$bin/peyk-bench-sink" "127.0.0.1:$SINK_PORT" >/dev/null & pids+=($!)
bench_start_api "$API_PORT"
api_url="http://127.0.0.1:$API_PORT"

echo "==> queuing $BACKLOG jobs of tenant bench$([ "$MIXED" = 1 ] && echo ", priorities 0-10 at random")"
batch=$(mktemp)
for ((sent = 0; sent < BACKLOG; sent += 1000)); do
  awk -v n=$((BACKLOG - sent < 1000 ? BACKLOG - sent : 1000)) -v url="$sink/hook" -v mixed="$MIXED" -v seed="$sent" 'BEGIN {
    srand(seed); printf "{\"jobs\": ["
    for (i = 0; i < n; i++) {
      printf "%s{\"type\": \"webhook\", \"payload\": {\"url\": \"%s\", \"body\": {}}%s}", (i ? "," : ""), url,
        (mixed == 1 ? sprintf(", \"priority\": %d", int(rand() * 11)) : "")
    }
    printf "]}" }' >"$batch"
  curl -fsS -o /dev/null "$api_url/v1/jobs/batch" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data-binary "@$batch"
done
rm -f "$batch"

echo "==> a worker (default settings) starts draining"
PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 "$bin/peyk-worker" & pids+=($!)
while [ "$(sql "SELECT count(*) FROM jobs WHERE status = 'succeeded'")" -lt 5000 ]; do sleep 0.2; done

echo "==> tenant clinic submits 100 jobs, one every 20 ms"
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$api_url/v1/jobs" -H "Authorization: Bearer $clinic" -H 'Content-Type: application/json' \
    -d "{\"type\": \"webhook\", \"payload\": {\"url\": \"$sink/clinic\", \"body\": {}}}"
  sleep 0.02
done
clinic_id=$(sql "SELECT id FROM tenants WHERE name = 'clinic'")
while [ "$(sql "SELECT count(*) FROM jobs WHERE tenant_id = '$clinic_id' AND started_at IS NOT NULL")" -lt 100 ]; do sleep 0.1; done
left=$(sql "SELECT count(*) FROM jobs WHERE tenant_id <> '$clinic_id' AND status IN ('queued', 'scheduled')")
waits=$(sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY w) * 1000) || ' ms p50, ' ||
                    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY w) * 1000) || ' ms p99, ' ||
                    round(max(w) * 1000) || ' ms max'
               FROM (SELECT extract(epoch FROM started_at - created_at) AS w FROM jobs WHERE tenant_id = '$clinic_id') t")
cat <<SUMMARY

== Peyk fairness benchmark ($(nproc) cores): 100 jobs of one tenant behind another's $BACKLOG-job backlog$([ "$MIXED" = 1 ] && echo " (priorities 0-10)") ==
wait from submission to start : $waits
backlog still waiting         : $left of $BACKLOG when the last of the 100 started
SUMMARY
