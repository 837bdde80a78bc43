#!/usr/bin/env bash
# Stops what infrastructure/dev/up.sh started (data under .peyk/dev is kept).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/infrastructure/dev/services.sh"
state="$root/.peyk/dev"
for name in worker api receiver mail; do
  if [ -f "$state/$name.pid" ]; then kill "$(cat "$state/$name.pid")" 2>/dev/null || true; rm -f "$state/$name.pid"; fi
done
PG_DATA="$state/postgres"
[ -d "$PG_DATA" ] || PG_DATA="/var/lib/peyk/$(echo -n "$state" | sha256sum | cut -c1-12)/postgres"
export PG_DATA
stop_services "$state" "${PEYK_DEV_REDIS_PORT:-63799}"
echo "stopped"
