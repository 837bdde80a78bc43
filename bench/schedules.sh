#!/usr/bin/env bash
# The schedules benchmark (README, "Benchmarks"): SCHEDULES active schedules
# (default 10,000, spread over TENANTS tenants), each firing every minute
# (`* * * * *`, all at the same second) and submitting a webhook job to a
# local sink. One worker fires them (PEYK_SCHEDULER on, serving no busy
# queue, so that its CPU is the scheduler's); a second worker, scheduler
# off, delivers the jobs. Measured over MINUTES minutes (default 3):
#   - when each fire was stored against its time (schedule_fires.fired_at -
#     fire_at, by the database's clock; negative: ahead, within the
#     scheduler's lookahead), and how late its job became ready to run (moved
#     from Redis's delayed set into the waiting set, the delivery worker's
#     peyk_queue_delay_lateness_seconds histogram): the fire's lateness;
#   - when the jobs started (one delivery worker's pace, for context);
#   - fires per minute against the expected count, and that none fired twice;
#   - CPU: the firing worker's, PostgreSQL's and Redis's, as a share of one
#     core and of the machine, over the window.
# One schedule per tenant is created through the API (validated as any);
# the rest are copies of it made in SQL (creating 10,000 over HTTP is not
# what is measured). API, workers, PostgreSQL (fsync on) and Redis (AOF on)
# all run on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

SCHEDULES=${SCHEDULES:-10000}
TENANTS=${TENANTS:-10}
MINUTES=${MINUTES:-3}
PG_PORT=${PEYK_BENCH_PG_PORT:-54349} REDIS_PORT=${PEYK_BENCH_REDIS_PORT:-63819}
API_PORT=18080 FIRING_PORT=19091 DELIVERY_PORT=19092 SINK_PORT=19999
state="$root/.peyk/bench"
sink="http://127.0.0.1:$SINK_PORT"

bench_services "$state" "$PG_PORT" "$REDIS_PORT"
bench_build release
bench_database peyk_bench
"$bin/peyk-bench-sink" "127.0.0.1:$SINK_PORT" >/dev/null & pids+=($!)
bench_start_api "$API_PORT"
api_url="http://127.0.0.1:$API_PORT"

echo "==> $SCHEDULES schedules over $TENANTS tenants, each every minute"
per_tenant=$(( (SCHEDULES + TENANTS - 1) / TENANTS ))
for t in $(seq 1 "$TENANTS"); do
  tenant_key=$("$bin/peyk-api" create-key --tenant "tenant-$t")
  curl -fsS -o /dev/null "$api_url/v1/schedules" -H "Authorization: Bearer $tenant_key" -H 'Content-Type: application/json' \
    -d "{\"name\": \"minutely-0\", \"cron\": \"* * * * *\", \"job\": {\"type\": \"webhook\", \"payload\": {\"url\": \"$sink/hook\", \"body\": {}}}}"
done
sql "INSERT INTO schedules (id, tenant_id, name, cron, every_seconds, timezone, calendar, anchor_at, start_at, end_at, target, overlap,
                            misfire, misfire_cap, misfire_grace_seconds, paused, next_fire_at, created_at, updated_at)
     SELECT gen_random_uuid(), s.tenant_id, 'minutely-' || g, s.cron, s.every_seconds, s.timezone, s.calendar, s.anchor_at, s.start_at,
            s.end_at, s.target, s.overlap, s.misfire, s.misfire_cap, s.misfire_grace_seconds, s.paused, s.next_fire_at, now(), now()
       FROM schedules s, generate_series(1, $per_tenant - 1) g" >/dev/null
sql "DELETE FROM schedules WHERE id IN (SELECT id FROM schedules ORDER BY tenant_id, name DESC OFFSET $SCHEDULES)" >/dev/null
total=$(sql "SELECT count(*) FROM schedules")

echo "==> workers: one fires (scheduler only), one delivers (scheduler off)"
PEYK_WORKER_ADDR="127.0.0.1:$FIRING_PORT" PEYK_QUEUES=payment_reconcile "$bin/peyk-worker" & firing=$!; pids+=("$firing")
PEYK_WORKER_ADDR="127.0.0.1:$DELIVERY_PORT" PEYK_QUEUES=webhook PEYK_SCHEDULER=false PEYK_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 \
  "$bin/peyk-worker" & pids+=($!)
wait_healthy "http://127.0.0.1:$FIRING_PORT"
wait_healthy "http://127.0.0.1:$DELIVERY_PORT"

# The window: from the first whole minute after start-up (by the database's clock) for MINUTES minutes.
first=$(sql "SELECT date_trunc('minute', now()) + interval '1 minute'")
last=$(sql "SELECT timestamptz '$first' + interval '$((MINUTES - 1)) minutes'")
echo "==> measuring the fires from $first to $last"
sleep "$(sql "SELECT greatest(0, extract(epoch FROM timestamptz '$first' - now()) - 2)")"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
postmaster=$(head -1 "$(sql "SHOW data_directory")/postmaster.pid")
# PostgreSQL: the postmaster and its children (backends of this moment; the
# workers keep theirs open, so the window's work is in them).
pg_ticks() { local t=0 p; for p in "$postmaster" $(pgrep -P "$postmaster"); do t=$((t + $(ticks "$p" 2>/dev/null || echo 0))); done; echo $t; }
redis_pid=$(cat "$state/redis/redis.pid")
cpu_start=$(ticks "$firing") pg_start=$(pg_ticks) redis_start=$(ticks "$redis_pid") wall_start=$(date +%s.%N)
sleep "$(sql "SELECT extract(epoch FROM timestamptz '$last' - now()) + 50")"
cpu_end=$(ticks "$firing") pg_end=$(pg_ticks) redis_end=$(ticks "$redis_pid") wall_end=$(date +%s.%N)

hz=$(getconf CLK_TCK) cores=$(nproc)
share() { awk -v d="$1" -v hz="$hz" -v w="$(echo "$wall_end - $wall_start" | bc)" -v c="$cores" \
  'BEGIN { printf "%.1f %% of one core, %.1f %% of the machine", 100 * d / hz / w, 100 * d / hz / w / c }'; }
window="fire_at BETWEEN '$first' AND '$last'"
# When each fire was stored, against its time (negative: ahead, the lookahead at work).
stored=$(sql "SELECT count(*) || ' fires, ' || count(DISTINCT (schedule_id, fire_at)) || ' distinct; stored p50 ' ||
                     round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l) * 1000) || ' ms, p99 ' ||
                     round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l) * 1000) || ' ms, max ' || round(max(l) * 1000) ||
                     ' ms from the fire time; ' || round(100.0 * count(*) FILTER (WHERE l <= 0) / greatest(count(*), 1), 2) ||
                     ' % stored by it, ' || round(100.0 * count(*) FILTER (WHERE l <= 1) / greatest(count(*), 1), 2) || ' % within 1 s'
                FROM (SELECT schedule_id, fire_at, extract(epoch FROM fired_at - fire_at) AS l
                        FROM schedule_fires WHERE $window AND outcome = 'submitted') f")
# A fire stored ahead waits in the delayed set; the delivery worker's consumers move it
# into the waiting set when it falls due: that histogram is the fire's lateness.
ready=$(curl -fs "http://127.0.0.1:$DELIVERY_PORT/metrics" | awk '
  /^peyk_queue_delay_lateness_seconds_bucket/ && /queue="webhook"/ {
    match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; bound[n] = le; count[n] = $2 }
  END {
    all = count[n]
    if (!all) { print "none (no fire was stored ahead: PEYK_SCHEDULER_LOOKAHEAD_SECONDS=0?)"; exit }
    for (i = 1; i <= n; i++) {
      if (!p50 && count[i] >= 0.5 * all) p50 = bound[i]
      if (!p99 && count[i] >= 0.99 * all) p99 = bound[i]
      if (bound[i] == "1") within = count[i]
      if (bound[i] == "0.1") tenth = count[i]
    }
    printf "%d fires; p50 <= %s s, p99 <= %s s (bucket bounds); %.2f %% within 0.1 s, %.2f %% within 1 s",
      all, p50, p99, (all ? 100 * tenth / all : 0), (all ? 100 * within / all : 0) }')
started=$(sql "SELECT 'p50 ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l) * 1000) || ' ms, p99 ' ||
                      round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l) * 1000) || ' ms, max ' || round(max(l) * 1000) || ' ms'
                 FROM (SELECT extract(epoch FROM j.started_at - f.fire_at) AS l
                         FROM schedule_fires f JOIN jobs j ON j.id = f.job_id WHERE f.$window AND j.started_at IS NOT NULL) t")
per_minute=$(sql "SELECT string_agg(n::text, ', ' ORDER BY m) FROM (SELECT fire_at AS m, count(*) AS n FROM schedule_fires WHERE $window GROUP BY fire_at) t")
jobs=$(sql "SELECT count(*) FROM jobs WHERE schedule_id IS NOT NULL AND idempotency_key IS NOT NULL")
cat <<SUMMARY

== Peyk schedules benchmark ($cores cores): $total schedules, each every minute, $MINUTES minutes ==
fires (recorded)         : $stored
fires ready to run       : $ready (delayed set -> waiting set, delivery worker's histogram, whole run)
jobs started (1 worker)  : $started after their fire time (how fast one worker delivers 10,000 webhooks, not the scheduler)
fires per minute         : $per_minute (expected $total each)
jobs stored by schedules : $jobs
CPU, firing worker       : $(share $((cpu_end - cpu_start)))
CPU, PostgreSQL          : $(share $((pg_end - pg_start)))
CPU, Redis               : $(share $((redis_end - redis_start)))
SUMMARY
