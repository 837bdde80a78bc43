# shellcheck shell=bash
# The set-up every benchmark script shares; sourced from the repository root.
#
#   bench_services STATE PG_PORT REDIS_PORT  start PostgreSQL (fsync on) and
#                                            Redis (AOF on) under STATE, and
#                                            stop them (and every pid in
#                                            `pids`) on exit
#   bench_build PROFILE                      build API, worker and bench tools;
#                                            sets `bin` (PEYK_BENCH_BIN=DIR: use
#                                            the binaries in DIR, built before,
#                                            e.g. to compare two commits)
#   bench_database NAME                      a fresh, migrated database NAME and
#                                            an empty Redis; exports
#                                            DATABASE_URL, sets `key` (an API key
#                                            of tenant `bench`, whose request
#                                            rate is raised to 1,000,000/s)
#   bench_start_api PORT                     start the API, wait until it
#                                            answers; sets `api` (its pid)
#   wait_healthy URL                         wait for URL/healthz (30 s at most)
#   sql QUERY                                one value from the database
#   peak_rss_mb PID                          a process's peak memory (VmHWM)
source infrastructure/dev/services.sh

pids=()
bench_services() {
  bench_state=$1 bench_pg_port=$2 bench_redis_port=$3
  start_postgres "$bench_state" "$bench_pg_port"
  start_redis "$bench_state" "$bench_redis_port"
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Let workers hand their entries back before Redis goes.
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_services "$bench_state" "$bench_redis_port"
}

bench_build() {
  local profile=$1
  if [ -n "${PEYK_BENCH_BIN:-}" ]; then
    echo "==> using the binaries in $PEYK_BENCH_BIN"
    bin=$PEYK_BENCH_BIN
    return
  fi
  # The worker links whisper.cpp and libopus (cmake, g++, libclang, opus).
  ensure_packages build-tools
  echo "==> building ($profile)"
  if [ "$profile" = release ]; then
    cargo build --release --quiet --bins -p peyk-api -p peyk-worker -p peyk-bench
  else
    cargo build --quiet --bins -p peyk-api -p peyk-worker -p peyk-bench
  fi
  bin="${CARGO_TARGET_DIR:-$root/target}/$profile"
}

bench_database() {
  bench_db=$1
  export PGOPTIONS="-c client_min_messages=warning"
  psql -h 127.0.0.1 -p "$bench_pg_port" -U postgres -qc "DROP DATABASE IF EXISTS $bench_db" postgres
  psql -h 127.0.0.1 -p "$bench_pg_port" -U postgres -qc "CREATE DATABASE $bench_db" postgres
  redis-cli -p "$bench_redis_port" flushall >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$bench_pg_port/$bench_db" REDIS_URL PEYK_LOG_FORMAT=json RUST_LOG=warn
  "$bin/peyk-api" migrate 2>/dev/null
  # shellcheck disable=SC2034 # read by the scripts that source this file
  key=$("$bin/peyk-api" create-key --tenant bench)
  # The benchmarks measure the platform, not the default request rate of a
  # tenant (10,000/s): the limiter still takes a token for every request.
  "$bin/peyk-api" set-limits --tenant bench --requests-per-second 1000000 --burst 1000000 >/dev/null
}

wait_healthy() {
  for _ in $(seq 1 300); do curl -fs "$1/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "!! $1 did not become healthy" >&2
  return 1
}

bench_start_api() {
  PEYK_API_ADDR="127.0.0.1:$1" "$bin/peyk-api" & api=$!; pids+=("$api")
  wait_healthy "http://127.0.0.1:$1"
}

sql() { psql -h 127.0.0.1 -p "$bench_pg_port" -U postgres -tAc "$1" "$bench_db"; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
