#!/usr/bin/env bash
# The medical_analysis benchmark (README, "Benchmarks"): what the worker adds
# to each LLM job beyond the provider's own time, and how many jobs one
# worker runs at once without more threads.
#
#   1. peyk-bench-llm, a fake OpenAI chat API, answers every request after
#      exactly DELAY_MS (default 200 ms) with a valid output.
#   2. A worker starts with nothing to do: its thread count at rest.
#   3. JOBS (default 2000) summary jobs are submitted while no worker runs.
#   4. A worker (concurrency CONCURRENCY, default 256, redaction on as for a
#      third-party provider) drains them; its thread count is sampled.
#
# Reported: per job, (finished_at − started_at) − DELAY_MS from the job
# records (claim, run, outcome write: everything Peyk adds) and the worker's
# own in-job time (result.timing_ms.worker: redaction, prompt, parsing, the
# schema check); the most requests the fake provider had in flight at once;
# threads at rest and at most while draining.
# Targets: ≤ 5 ms added per job; ≥ 200 jobs at once with no more threads.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh

JOBS=${JOBS:-2000}
DELAY_MS=${DELAY_MS:-200}
CONCURRENCY=${CONCURRENCY:-256}
PROFILE=${PEYK_PROFILE:-release}
PG_PORT=54359 REDIS_PORT=63829 API_PORT=18081 WORKER_PORT=19092 LLM_PORT=19998
state="$root/.peyk/bench-llm"

bench_services "$state" "$PG_PORT" "$REDIS_PORT"
bench_build "$PROFILE"
bench_database peyk_bench_llm
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }

"$bin/peyk-bench-llm" "127.0.0.1:$LLM_PORT" "$DELAY_MS" & pids+=($!)
bench_start_api "$API_PORT"

export PEYK_WORKER_ADDR="127.0.0.1:$WORKER_PORT" PEYK_QUEUES=medical_analysis PEYK_CONCURRENCY="medical_analysis=$CONCURRENCY" \
  PEYK_LLM_BASE_URL="http://127.0.0.1:$LLM_PORT/v1" PEYK_LLM_MODEL=bench-model PEYK_LLM_API_KEY=bench PEYK_LLM_REDACT=true
start_worker() {
  "$bin/peyk-worker" & worker=$!; pids+=("$worker")
  wait_healthy "http://127.0.0.1:$WORKER_PORT"
}

echo "==> 2. an idle worker's threads"
start_worker
sleep 2
idle_threads=$(threads "$worker")
kill -TERM "$worker"; wait "$worker" || true

echo "==> 3. submitting $JOBS jobs"
body='{"type":"medical_analysis","payload":{"analysis_type":"summary","text":"بیمار ۴۵ ساله، موبایل ۰۹۱۲۱۲۳۴۵۶۷، از سه روز پیش سرفهٔ خشک و تب خفیف دارد. تنگی نفس ندارد. Dry cough and mild fever for three days.","patient_context":{"age":45,"sex":"female"}}}'
seq "$JOBS" | xargs -P 16 -I{} curl -fs -o /dev/null -H "Authorization: Bearer $key" -H "Content-Type: application/json" -d "$body" "http://127.0.0.1:$API_PORT/v1/jobs"
submitted=$(sql "SELECT count(*) FROM jobs WHERE job_type = 'medical_analysis'")

echo "==> 4. draining $submitted jobs (concurrency $CONCURRENCY, provider delay ${DELAY_MS} ms)"
started=$(date +%s.%N)
start_worker
max_threads=$idle_threads
while [ "$(sql "SELECT count(*) FROM jobs WHERE job_type = 'medical_analysis' AND status IN ('succeeded','failed','dead')")" -lt "$submitted" ]; do
  t=$(threads "$worker"); [ "$t" -gt "$max_threads" ] && max_threads=$t
  sleep 0.1
done
finished=$(date +%s.%N)
stats=$(curl -fs "http://127.0.0.1:$LLM_PORT/stats")
failed=$(sql "SELECT count(*) FROM jobs WHERE job_type = 'medical_analysis' AND status <> 'succeeded'")
added=$(sql "SELECT concat_ws(' / ', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 2), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY x)::numeric, 2), round(max(x)::numeric, 2))
  FROM (SELECT extract(epoch FROM finished_at - started_at) * 1000 - $DELAY_MS AS x FROM jobs WHERE job_type = 'medical_analysis' AND status = 'succeeded') t")
own=$(sql "SELECT concat_ws(' / ', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 3), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY x)::numeric, 3), round(max(x)::numeric, 3))
  FROM (SELECT (result->'timing_ms'->>'worker')::float8 AS x FROM jobs WHERE job_type = 'medical_analysis' AND status = 'succeeded') t")
outside=$(sql "SELECT concat_ws(' / ', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 2), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY x)::numeric, 2), round(max(x)::numeric, 2))
  FROM (SELECT extract(epoch FROM finished_at - started_at) * 1000 - (result->'timing_ms'->>'provider')::float8 - (result->'timing_ms'->>'worker')::float8 AS x
        FROM jobs WHERE job_type = 'medical_analysis' AND status = 'succeeded') t")
provider=$(sql "SELECT concat_ws(' / ', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 2), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY x)::numeric, 2))
  FROM (SELECT (result->'timing_ms'->>'provider')::float8 AS x FROM jobs WHERE job_type = 'medical_analysis' AND status = 'succeeded') t")
rate=$(echo "$submitted $started $finished" | awk '{printf "%.0f", $1 / ($3 - $2)}')
# shellcheck disable=SC2001 # a capture group: no parameter expansion does that
max_in_flight=$(echo "$stats" | sed 's/.*"max_in_flight":\([0-9]*\).*/\1/')
cat <<SUMMARY

== Peyk medical_analysis benchmark ($(nproc) cores, $PROFILE) ==
jobs                         : $submitted ($failed not succeeded), drained at $rate jobs/s
added per job, job record    : p50 / p99 / max = $added ms  ((finished_at - started_at) - ${DELAY_MS} ms)
worker's own time in the job: p50 / p99 / max = $own ms  (result.timing_ms.worker: redaction, prompt, parsing, schema check)
provider call as the job saw : p50 / p99 = $provider ms  (result.timing_ms.provider: HTTP round trip incl. the ${DELAY_MS} ms)
runner outside the job       : p50 / p99 / max = $outside ms  (claim to outcome written, minus the job's run)
jobs at the provider at once : $max_in_flight (target >= 200; concurrency $CONCURRENCY)
worker threads               : $idle_threads idle, at most $max_threads while draining
SUMMARY
