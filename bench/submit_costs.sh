#!/usr/bin/env bash
# What one submission costs, process by process (README, "Benchmarks"):
# `wrk` submits webhook jobs (32 connections, 8 s, no worker) to a release
# API, then prints the CPU time per stored job of the API, Redis and
# PostgreSQL, PostgreSQL commits per job, and each Redis command's calls and
# time per job (inside scripts too). PEYK_BENCH_BIN=DIR compares builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"; source bench/lib.sh
PG_PORT=54349 REDIS_PORT=63819 API_PORT=18080; state="$root/.peyk/bench"
bench_services "$state" "$PG_PORT" "$REDIS_PORT"
bench_build release
bench_database peyk_bench
# shellcheck disable=SC2154 # key: set by bench_database
export PEYK_BENCH_KEY=$key PEYK_BENCH_SINK="http://127.0.0.1:19999" PEYK_BENCH_JOB=webhook PEYK_BENCH_BATCH=
bench_start_api "$API_PORT"
wrk -t2 -c32 -d3s -s bench/submit.lua "http://127.0.0.1:$API_PORT/v1/jobs" >/dev/null
redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
x0=$(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = 'peyk_bench'")
j0=$(sql "SELECT count(*) FROM jobs")
cpu() { for p in $(pgrep -x "$1"); do awk '{print $14+$15}' /proc/"$p"/stat; done | awk '{s+=$1} END {print s}'; }
a0=$(cpu peyk-api); r0=$(cpu redis-server); p0=$(cpu postgres)
wrk -t2 -c32 -d8s -s bench/submit.lua "http://127.0.0.1:$API_PORT/v1/jobs" | grep Requests/sec
a1=$(cpu peyk-api); r1=$(cpu redis-server); p1=$(cpu postgres)
sleep 1
j1=$(sql "SELECT count(*) FROM jobs"); x1=$(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = 'peyk_bench'")
n=$((j1 - j0)); echo "CPU per job (us): api $(( (a1-a0)*10000/n )) redis $(( (r1-r0)*10000/n )) postgres $(( (p1-p0)*10000/n ))"; echo "jobs $n; PG commits per job: $(echo "($x1 - $x0) / $n" | bc -l | cut -c1-5)"
redis-cli -p "$REDIS_PORT" info commandstats | grep cmdstat | awk -F"[:=,]" -v n=$n "{printf \"%s %.3f per job, %.2f us per job\\n\", \$1, \$3/n, \$5/n}"
