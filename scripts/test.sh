#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. format check   2. unit tests (Criterion)   3. unit tests under ASan+UBSan
#   4. integration suites against the real binary, kernel and Docker engine.
# Ends with one line "N passed, N failed" over all suites; exit status 1 if anything failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh" test || exit 1

passed=0; failed=0; failures=()
note() { printf '\n=== %s\n' "$*"; }
count_ctest() { # sums Criterion's per-binary "Synthesis: Tested: T | Passing: P | Failing: F | Crashing: C"
  local log=$1 t=0 p=0 bad=0 bins
  while read -r tp pp fp cp; do
    t=$((t+tp)); p=$((p+pp)); bad=$((bad+fp+cp))
  done < <(sed -nE 's/.*Synthesis: Tested: ([0-9]+) \| Passing: ([0-9]+) \| Failing: ([0-9]+) \| Crashing: ([0-9]+).*/\1 \2 \3 \4/p' "$log")
  bins=$(grep -cE 'Test +#[0-9]+: .*\*\*\*(Failed|Exception)' "$log" || true)
  passed=$((passed + p)); failed=$((failed + bad))
  if [ "$t" -eq 0 ]; then failed=$((failed+1)); failures+=("$2: no tests ran"); fi
  if [ "$bad" -ne 0 ] || [ "$bins" -ne 0 ]; then failures+=("$2: $bad tests failed, $bins binaries failed"); fi
  if [ "$bad" -eq 0 ] && [ "$bins" -ne 0 ]; then failed=$((failed + bins)); fi
}

note "format check (clang-format)"
if files=$(git ls-files 'src/*.c' 'src/*.h' 'src/**/*.c' 'src/**/*.h' 'bpf/*.c' 'bpf/*.h' 2>/dev/null) && [ -n "$files" ]; then
  if clang-format --dry-run -Werror $files >/tmp/bt-format.log 2>&1; then
    passed=$((passed+1)); echo "format ok"
  else
    failed=$((failed+1)); failures+=("clang-format"); head -20 /tmp/bt-format.log
  fi
fi

note "build (warnings are errors)"
if ! "$root/scripts/build.sh" "$root/build" -DBT_WERROR=ON; then
  echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

note "unit tests"
ctest --test-dir "$root/build" -V -j2 2>&1 | tee /tmp/bt-unit.log
count_ctest /tmp/bt-unit.log "unit"

note "unit tests under ASan and UBSan"
if "$root/scripts/build.sh" "$root/build-asan" -DBT_WERROR=ON -DBT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$root/build-asan" -V -j2 2>&1 | tee /tmp/bt-asan.log
  count_ctest /tmp/bt-asan.log "asan"
else
  failed=$((failed+1)); failures+=("asan build")
fi

note "integration suites"
python3 "$root/tests/integration/run.py" --build "$root/build" 2>&1 | tee /tmp/bt-integ.log
line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' /tmp/bt-integ.log | tail -1)
if [ -n "$line" ]; then
  p=$(sed -E 's/^integration: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
  f=$(sed -E 's/^integration: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
  passed=$((passed+p)); failed=$((failed+f))
  [ "$f" -eq 0 ] || failures+=("integration: $f failed")
else
  failed=$((failed+1)); failures+=("integration: runner crashed")
fi

note "summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
