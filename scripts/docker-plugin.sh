#!/usr/bin/env bash
# Packages bpftail as a Docker logging plugin (managed plugin, docker.logdriver/1.0) from this
# repository, with nothing pulled from a registry.
#
# Usage: scripts/docker-plugin.sh create NAME [--dir DIR] [--replace]
#   create NAME   makes the local Debian base images when missing (scripts/docker-base.sh),
#                 builds the repository's Dockerfile with the classic builder, exports a
#                 container of the image into DIR/rootfs, writes DIR/config.json
#                 (config/docker-plugin/config.json) and runs `docker plugin create NAME DIR`.
#                 Enabling is left to you: `docker plugin enable NAME`.
#   --dir DIR     keep the plugin directory in DIR (default: a temporary one, removed after)
#   --replace     disable and remove an existing plugin NAME first
# Environment: DOCKER_HOST (the engine), BT_IMAGE (image tag to build, bpftail:latest),
# BT_BUILD_NETWORK (network of RUN steps, `host` by default: works on engines without a bridge).
# NAME is what `--log-driver` takes; name it `loki` (or install it with `--alias loki`) to keep a
# daemon.json written for Loki's driver unchanged. Publish with `docker plugin push NAME` after
# naming it REGISTRY/REPO:TAG.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-2}"; }

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in
  create) ;;
  -h|--help|help) usage 0 ;;
  *) echo "docker-plugin: unknown command: $cmd" >&2; usage ;;
esac
[ $# -ge 1 ] || usage
name=$1; shift
dir='' replace=0
while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || usage; dir=$2; shift ;;
    --replace) replace=1 ;;
    *) echo "docker-plugin: unknown argument: $1" >&2; usage ;;
  esac
  shift
done
image=${BT_IMAGE:-bpftail:latest}
# The classic builder: this CLI may have no buildx, and BuildKit builds then fail.
export DOCKER_BUILDKIT=0

if docker plugin inspect "$name" >/dev/null 2>&1; then
  if [ "$replace" -eq 0 ]; then
    echo "docker-plugin: plugin $name exists; remove it (docker plugin disable -f $name;" \
         "docker plugin rm -f $name) or use --replace" >&2
    exit 1
  fi
  docker plugin disable -f "$name" >/dev/null 2>&1 || true
  docker plugin rm -f "$name" >/dev/null
fi

"$root/scripts/docker-base.sh"
echo "docker-plugin: building $image from $root/Dockerfile" >&2
t0=$SECONDS
docker build -q --network "${BT_BUILD_NETWORK:-host}" -t "$image" "$root" >/dev/null
echo "docker-plugin: image built in $((SECONDS - t0))s" >&2

keep=1
if [ -z "$dir" ]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/bpftail-plugin.XXXXXX")
  keep=0
fi
cid=
cleanup() {
  [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1
  [ "$keep" -eq 1 ] || rm -rf "$dir"
}
trap cleanup EXIT
rm -rf "$dir/rootfs"
mkdir -p "$dir/rootfs"
cid=$(docker create "$image")
docker export "$cid" | tar -x -C "$dir/rootfs"
# Docker creates the plugin's socket and FIFOs under /run/docker inside the rootfs.
mkdir -p "$dir/rootfs/run/docker/plugins" "$dir/rootfs/run/docker/logging" \
         "$dir/rootfs/var/lib/bpftail-plugin"
cp "$root/config/docker-plugin/config.json" "$dir/config.json"
docker plugin create "$name" "$dir" >/dev/null
echo "docker-plugin: created $name; enable it with: docker plugin enable $name" >&2
