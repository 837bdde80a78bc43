#!/usr/bin/env bash
# Local PostgreSQL and Redis for development and tests, on loopback, with
# their data under a project-local folder. Sourced by up.sh, test.sh and the
# benchmarks; every function is idempotent.
#
#   ensure_packages            install redis-server / postgresql if missing (apt)
#   start_postgres DIR PORT    initdb (once) and start; prints nothing, sets PG_URL_ADMIN
#   start_redis DIR PORT       start with AOF persistence; sets REDIS_URL
#   stop_services DIR          stop both

set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

pg_bindir() {
  local dir
  dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)"
}

ensure_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -x "$(pg_bindir)/initdb" ] || missing+=(postgresql)
  command -v psql >/dev/null || missing+=(postgresql-client)
  # Extra commands (or libraries), with the Debian package that provides each.
  for extra in "$@"; do
    case "$extra" in
      promtool) command -v promtool >/dev/null || missing+=(prometheus) ;;
      nginx) command -v nginx >/dev/null || missing+=(nginx-light) ;;
      # The headless browser that loads /docs with the network cut (tests/tests/e2e/api.rs).
      chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
      # WebDriver for Chromium: the console's tests click through it (tests/tests/e2e/console.rs).
      chromedriver) command -v chromedriver >/dev/null || missing+=(chromium-driver) ;;
      # Building whisper.cpp (cmake, a C++ compiler, libclang for bindgen)
      # and linking libopus for Opus voice notes.
      build-tools)
        for tool in cmake pkg-config g++; do command -v "$tool" >/dev/null || missing+=("$tool"); done
        ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || missing+=(libclang-dev)
        pkg-config --exists opus 2>/dev/null || missing+=(libopus-dev)
        ;;
      *) command -v "$extra" >/dev/null || missing+=("$extra") ;;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} (Debian packages)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Debian starts system-wide services on install; ours run on their own ports, so those can stay.
}

# Runs a PostgreSQL tool as the user that owns the cluster: initdb refuses root.
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_postgres() {
  local dir=$1 port=$2 bin data
  bin=$(pg_bindir)
  data="$dir/postgres"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || as_root useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    mkdir -p "$data"
    # The postgres user must reach the folder; under a private home it cannot.
    if ! runuser -u postgres -- test -x "$dir"; then
      local fallback
      fallback="/var/lib/peyk/$(echo -n "$dir" | sha256sum | cut -c1-12)"
      echo "==> $dir is not reachable by the postgres user; keeping PostgreSQL data in $fallback" >&2
      data="$fallback/postgres"
      mkdir -p "$data"
    fi
    chown -R postgres "$data"
  fi
  mkdir -p "$data"
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    pg_as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=trust -E UTF8 --locale=C.UTF-8 >/dev/null \
      || pg_as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=trust -E UTF8 --locale=C >/dev/null
  fi
  if ! pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    pg_as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$data' -c max_connections=400 -c shared_buffers=256MB -c fsync=${PEYK_PG_FSYNC:-on} -c max_wal_size=${PEYK_PG_MAX_WAL_SIZE:-1GB}" \
      start >/dev/null
  fi
  PG_DATA="$data"
  PG_URL_ADMIN="postgres://postgres@127.0.0.1:$port/postgres"
  export PG_DATA PG_URL_ADMIN
}

start_redis() {
  local dir=$1 port=$2
  mkdir -p "$dir/redis"
  if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --dir "$dir/redis" \
      --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" \
      --appendonly "${PEYK_REDIS_AOF:-yes}" --save "" >/dev/null
    # PONG, not just an answer: while Redis loads its append-only file it
    # answers `LOADING` (and refuses FLUSHALL), with exit status 0.
    for _ in $(seq 1 300); do [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  fi
  REDIS_URL="redis://127.0.0.1:$port"
  export REDIS_URL
}

# Creates database NAME if it does not exist.
create_database() {
  local port=$1 name=$2
  if ! psql -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" postgres | grep -q 1; then
    psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE \"$name\"" postgres
  fi
}

stop_services() {
  local dir=$1 redis_port=$2
  redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  fi
}
