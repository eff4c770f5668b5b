#!/usr/bin/env bash
# Installs the Debian packages bpftail needs to build, run and test, when they are missing.
# Usage: scripts/deps.sh [build|test|docker]   (test includes build; docker adds the engine,
#        and what the image, stack and plugin suites use: debootstrap for the local Debian base
#        image, Debian's docker-compose v1, and prometheus to run the dashboards' queries)
# When another apt-get or dpkg holds its lock (unattended-upgrades on a fresh machine, another
# build), waits for it up to $BT_APT_WAIT seconds (600 by default) instead of failing at once.
set -euo pipefail

want=(build-essential cmake pkg-config libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler
      libsnappy-dev libjansson-dev libyaml-dev libmicrohttpd-dev libre2-dev libbpf-dev clang llvm
      bpftool libcap-dev libsystemd-dev zlib1g-dev libssl-dev)
case "${1:-build}" in
  test) want+=(libcriterion-dev python3 python3-pytest clang-format procps curl rsyslog rsyslog-openssl)
        # Writes real journal files from export-format input for the journal tests.
        want+=(systemd-journal-remote)
        # Node is only needed to check dashboard queries with Grafana's grammar.
        command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm)
        # The Kubernetes manifests are checked with kubectl's client-side dry run and PyYAML;
        # openssl makes the certificate of the test API server's TLS.
        # Another kubectl already on PATH (from another package) serves as well and would
        # conflict with the package's /usr/bin/kubectl.
        want+=(python3-yaml openssl)
        # TLS and auth to Loki are tested through a real nginx terminating TLS in front of the
        # test Loki server; systemd-analyze (package systemd) checks the unit in config/.
        want+=(nginx-light systemd)
        command -v kubectl >/dev/null || want+=(kubernetes-client) ;;
  docker) want+=(docker.io busybox-static) ;;
  build) ;;
  *) echo "usage: $0 [build|test|docker]" >&2; exit 2 ;;
esac
# The image, compose stack and plugin suites: the local Debian base image, Debian's compose v1,
# and a Prometheus to run the dashboards' queries.
if [ "${1:-build}" = docker ]; then want+=(debootstrap docker-compose prometheus); fi

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

wait_max=${BT_APT_WAIT:-600}
deadline=$((SECONDS + wait_max))
# Runs an apt-get command; while it fails because another process holds the dpkg or apt lists
# lock, says so once and tries again every 5 s until the deadline. apt-get itself waits for the
# dpkg lock (DPkg::Lock::Timeout) but `apt-get update` gives up on the lists lock at once.
apt_retry() {
  local out rc left said=
  while :; do
    left=$((deadline - SECONDS)); [ "$left" -gt 0 ] || left=1
    out=$(mktemp)
    rc=0
    $SUDO apt-get -o DPkg::Lock::Timeout="$left" "$@" 2>"$out" >/dev/null || rc=$?
    if [ "$rc" -ne 0 ] && grep -qiE 'could not get lock|unable to (acquire|lock)|is another process using it' "$out" \
        && [ "$SECONDS" -lt "$deadline" ]; then
      [ -n "$said" ] || echo "deps: another apt-get or dpkg holds the package lock; waiting up to ${wait_max}s" >&2
      said=1
      rm -f "$out"
      sleep 5
      continue
    fi
    [ "$rc" -eq 0 ] || cat "$out" >&2
    rm -f "$out"
    return "$rc"
  done
}

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt_retry update -qq
apt_retry install -y -qq --no-install-recommends "${missing[@]}"
# The tests run their own Prometheus; the package's service (started where systemd runs) is not
# wanted on a build machine.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
