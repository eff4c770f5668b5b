#!/usr/bin/env bash
# Builds and runs bpftail's libFuzzer targets (tests/fuzz/fuzz_<name>.c; docs/fuzzing.md).
#
# Usage: scripts/fuzz.sh [options] [TARGET|all] [SECONDS]
#   TARGET             one target (fuzz_syslog or just syslog); all (default): every target
#   SECONDS            fuzzing time per target (default 300)
#   --list             print the target names, one a line, and exit
#   --regress          only replay the committed crash inputs (tests/fuzz/regress/<target>/)
#   -k REGEX           with all: only the targets whose name matches (grep -E)
#   -j N               run N targets at once (default 1)
#   --nice N           run the fuzzers under nice -n N (default 19: the machine may be shared)
#   --build DIR        fuzz build directory (default build-fuzz)
# Each target fuzzes with its committed seeds (tests/fuzz/corpus/<target>/, read only) and a
# working corpus kept between runs in DIR/corpus/<target>/, its dictionary when there is one
# (tests/fuzz/dict/<target>.dict), ASan, UBSan and leak detection. Before fuzzing, every
# committed crash input of the target is replayed. A crash, leak, timeout (-timeout, 10 s an
# input) or out-of-memory (-rss_limit_mb, 2048) fails the target; its input is kept in
# DIR/artifacts/<target>/ and named in the output. One line per target at the end:
#   PASS fuzz_x <seconds>s <executions> execs   or   FAIL fuzz_x: <why> [input: <path>]
# preceded, for a target with committed crash inputs, by "PASS fuzz_x regress: N inputs" (or
# its FAIL line, and then the target is not fuzzed).
# Exit status 1 if any target failed. Needs clang with libFuzzer (scripts/deps.sh fuzz).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-2}"; }
list=0 regress_only=0 filter= jobs=1 nice=19 bdir=$root/build-fuzz target=all secs=300 npos=0
while [ $# -gt 0 ]; do
  case $1 in
    --list) list=1 ;;
    --regress) regress_only=1 ;;
    -j) [ $# -ge 2 ] || usage; jobs=$2; shift ;;
    -k) [ $# -ge 2 ] || usage; filter=$2; shift ;;
    --nice) [ $# -ge 2 ] || usage; nice=$2; shift ;;
    --build) [ $# -ge 2 ] || usage; bdir=$2; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "fuzz.sh: unknown option: $1" >&2; usage ;;
    *) case $npos in
         0) target=$1 ;;
         1) secs=$1 ;;
         *) echo "fuzz.sh: too many arguments" >&2; usage ;;
       esac
       npos=$((npos+1)) ;;
  esac
  shift
done

targets() { for f in "$root"/tests/fuzz/fuzz_*.c; do basename "$f" .c; done; }
if [ "$list" -eq 1 ]; then targets; exit 0; fi
case $secs in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number: $secs" >&2; exit 2 ;; esac
case $jobs in ''|*[!0-9]*|0) echo "fuzz.sh: -j needs a positive number" >&2; exit 2 ;; esac

if [ "$target" = all ]; then
  mapfile -t run < <(targets | grep -E -- "${filter:-.}")
  if [ ${#run[@]} -eq 0 ]; then echo "fuzz.sh: no target matches $filter"; exit 0; fi
else
  t=fuzz_${target#fuzz_}
  [ -f "$root/tests/fuzz/$t.c" ] || { echo "fuzz.sh: no target $target (see --list)" >&2; exit 2; }
  run=("$t")
fi

"$root/scripts/deps.sh" fuzz || exit 1
echo "fuzz: building ${run[*]} in $bdir" >&2
CC=clang CXX=clang++ cmake -S "$root" -B "$bdir" -DBT_FUZZ=ON -DBT_TESTS=OFF -DBT_BPF=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$bdir.configure.log" 2>&1 \
  || { cat "$bdir.configure.log" >&2; echo "FAIL fuzz build: cmake"; exit 1; }
rm -f "$bdir.configure.log"
if ! cmake --build "$bdir" -j"$(nproc)" --target "${run[@]}" >"$bdir/build.log" 2>&1; then
  tail -30 "$bdir/build.log" >&2
  echo "FAIL fuzz build"
  exit 1
fi

logs=$bdir/logs
mkdir -p "$logs"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Runs one target; its result line goes to $logs/<target>.result.
one() {
  local t=$1 bin=$bdir/tests/fuzz/$1 log=$logs/$1.log res=$logs/$1.result
  local art=$bdir/artifacts/$t/ work=$bdir/corpus/$t seeds=$root/tests/fuzz/corpus/$t
  local reg=$root/tests/fuzz/regress/$t dict=$root/tests/fuzz/dict/$t.dict
  mkdir -p "$art" "$work" "$seeds"
  : >"$log"
  # Committed crash inputs first: each must now run clean.
  : >"$res"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    local nreg
    nreg=$(ls -A "$reg" | wc -l)
    if ! nice -n "$nice" timeout 600 "$bin" -timeout=10 -rss_limit_mb=2048 "$reg"/* >>"$log" 2>&1; then
      local bad
      bad=$(grep -oE 'Running: .*' "$log" | tail -1 | sed 's/^Running: //')
      echo "FAIL $t regress: a committed crash input fails again; input: ${bad:-$reg}" >>"$res"
      return
    fi
    echo "PASS $t regress: $nreg inputs" >>"$res"
  fi
  [ "$regress_only" -eq 1 ] && return
  local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1
              -print_final_stats=1 -artifact_prefix="$art" -close_fd_mask=1)
  [ -f "$dict" ] && args+=(-dict="$dict")
  local rc=0 start=$SECONDS
  nice -n "$nice" timeout $((secs + 300)) "$bin" "${args[@]}" "$work" "$seeds" >>"$log" 2>&1 || rc=$?
  local took=$((SECONDS - start))
  local execs
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "PASS $t ${took}s ${execs:-?} execs" >>"$res"
    return
  fi
  local why=crash input
  input=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -1)
  if grep -q 'ERROR: LeakSanitizer' "$log"; then why=leak
  elif grep -q 'ERROR: libFuzzer: timeout' "$log"; then why=timeout
  elif grep -q 'out-of-memory' "$log"; then why=out-of-memory
  elif [ "$rc" -eq 124 ]; then why="hang (killed after $((secs + 300))s)"
  fi
  echo "FAIL $t: $why after ${took}s, ${execs:-?} execs (log: $log)${input:+; input: $input}" >>"$res"
}

for t in "${run[@]}"; do rm -f "$logs/$t.result"; done
running=0
for t in "${run[@]}"; do
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running-1)); fi
  one "$t" &
  running=$((running+1))
done
wait

fail=0
for t in "${run[@]}"; do
  if [ -s "$logs/$t.result" ]; then cat "$logs/$t.result"; else echo "FAIL $t: no result"; fail=1; fi
  grep -q '^FAIL' "$logs/$t.result" 2>/dev/null && fail=1
done
exit "$fail"
