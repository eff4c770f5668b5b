#!/usr/bin/env bash
# Installs what is missing, builds, and runs bpftail. Without -config.file it ships
# /var/log/*log as job="varlogs" to $LOKI_URL (default http://localhost:3100); when no Loki
# answers there it says so and prints what it would ship instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" build
"$root/scripts/build.sh" "$root/build" -DBT_TESTS=OFF
exec "$root/build/bpftail" "$@"
