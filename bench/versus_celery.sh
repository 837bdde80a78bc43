#!/usr/bin/env bash
# Peyk against the Celery + FastAPI stack it replaces, in one run on this
# machine (README, "Benchmarks"): ROUNDS (2) rounds, each bench/celery.sh then
# bench/run.sh with the same DURATION (20 s) and CONNECTIONS (32), webhook jobs,
# both at their default settings. Prints each round's figures and the ratios.
# Machines of this kind differ by up to 2x: only ratios from one run compare.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ROUNDS=${ROUNDS:-2}
export DURATION=${DURATION:-20} CONNECTIONS=${CONNECTIONS:-32}
if [ -z "${PEYK_BENCH_BIN:-}" ]; then
  cargo build --release --quiet --bins -p peyk-api -p peyk-worker -p peyk-bench
  export PEYK_BENCH_BIN="${CARGO_TARGET_DIR:-$root/target}/release"
fi

# A summary line's jobs/s, e.g. `deliveries to sink    : 4087 jobs/s (…)`.
figure() { sed -n "s/^$2 *: \([0-9.]*\) jobs\/s.*/\1/p" <<<"$1"; }
p99() { sed -n 's/^submissions over HTTP : .* p99 \([0-9.]*ms\).*/\1/p' <<<"$1"; }
rows=()
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round: Celery + FastAPI"
  celery=$(bench/celery.sh 2>&1 | tail -4)
  echo "$celery"
  echo "==> round $round: Peyk"
  peyk=$(bench/run.sh 2>&1 | tail -5)
  echo "$peyk"
  cs=$(figure "$celery" "submissions over HTTP") cd=$(figure "$celery" "deliveries to sink")
  ps=$(figure "$peyk" "submissions over HTTP") pd=$(figure "$peyk" "deliveries to sink")
  rows+=("$(awk -v r="$round" -v cs="$cs" -v cd="$cd" -v ps="$ps" -v pd="$pd" -v cp="$(p99 "$celery")" -v pp="$(p99 "$peyk")" \
    'BEGIN {printf "| %s | %.0f (p99 %s) | %.0f | %.0f (p99 %s) | %.0f | %.1fx | %.1fx |", r, cs, cp, cd, ps, pp, pd, ps / cs, pd / cd}')")
done
echo
echo "== Peyk vs Celery + FastAPI, webhook jobs, $(nproc) cores, ${DURATION}s at $CONNECTIONS connections, $(git rev-parse --short HEAD) =="
echo "| round | Celery submissions/s | Celery deliveries/s | Peyk submissions/s | Peyk deliveries/s | submissions | deliveries |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
