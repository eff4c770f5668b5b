#!/usr/bin/env bash
# Installs what is missing, builds, and runs bpftail. Without -config.file it ships
# /var/log/*log as job="varlogs" to $LOKI_URL (default http://localhost:3100); when no Loki
# answers there it says so and prints what it would ship instead.
# Arguments go to bpftail: `scripts/run.sh -version` builds and exits, `-dry-run` pushes nothing.
#
# It shares build/ with scripts/test.sh. A fresh build/ is configured without the unit tests
# (Criterion is a test-only dependency); a build/ that test.sh configured keeps them, so running
# this script never takes the tests away from a later test.sh, and either runs in any order.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" build
tests=OFF
grep -qiE '^BT_TESTS:[A-Z]+=(ON|1|TRUE|YES)$' "$root/build/CMakeCache.txt" 2>/dev/null && tests=ON
"$root/scripts/build.sh" "$root/build" -DBT_TESTS=$tests
exec "$root/build/bpftail" "$@"
