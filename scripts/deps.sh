#!/usr/bin/env bash
# Installs the Debian packages bpftail needs to build, run and test, when they are missing.
# Usage: scripts/deps.sh [build|test|docker]   (test includes build; docker adds the engine)
set -euo pipefail

want=(build-essential cmake pkg-config libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler
      libsnappy-dev libjansson-dev libyaml-dev libmicrohttpd-dev libpcre2-dev libbpf-dev clang llvm
      bpftool libcap-dev)
case "${1:-build}" in
  test) want+=(libcriterion-dev python3 clang-format procps curl)
        # Node is only needed to check dashboard queries with Grafana's grammar.
        command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm) ;;
  docker) want+=(docker.io busybox-static) ;;
  build) ;;
  *) echo "usage: $0 [build|test|docker]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
