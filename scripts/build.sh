#!/usr/bin/env bash
# Configures and builds bpftail into a build directory.
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build}
shift || true
bpf=ON
# BPF needs clang and bpftool at build time; without them the watcher compiles to its stub.
command -v clang >/dev/null && command -v bpftool >/dev/null || bpf=OFF
cmake -S "$root" -B "$dir" -DBT_BPF=$bpf "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
