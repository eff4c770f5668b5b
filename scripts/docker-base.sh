#!/usr/bin/env bash
# Makes the local base images the Dockerfile starts from, debian:12 and debian:12-slim, when the
# engine does not have them yet, without pulling anything: a Debian bookworm rootfs made with
# `debootstrap --variant=minbase`, slimmed (no docs, man pages or locales, and a dpkg rule that
# keeps them out of later installs), imported with `docker import`. Both tags name the same
# slim rootfs: the build stage only needs apt and a compiler from it.
#
# Usage: scripts/docker-base.sh [--force]
#   --force   import again even if the images exist (the rootfs tarball is still reused)
# Environment:
#   DOCKER_HOST         the engine to put the images into (the docker CLI's default otherwise)
#   BT_DOCKER_CACHE     where the rootfs tarball is kept between runs (/var/cache/bpftail);
#                       with a cached tarball a run takes seconds, without one about a minute
#   BT_DEBIAN_MIRROR    Debian mirror for debootstrap and the image's apt sources
#                       (http://deb.debian.org/debian)
# Needs root (debootstrap); installs debootstrap with apt-get when missing (scripts/deps.sh docker).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) echo "docker-base: unknown argument: $1" >&2; exit 2 ;;
esac
cache=${BT_DOCKER_CACHE:-/var/cache/bpftail}
mirror=${BT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
tarball=$cache/debian-bookworm-minbase.tar
images=(debian:12-slim debian:12)

have() { docker image inspect "$1" >/dev/null 2>&1; }

missing=()
for i in "${images[@]}"; do
  if [ "$force" -eq 1 ] || ! have "$i"; then missing+=("$i"); fi
done
[ ${#missing[@]} -eq 0 ] && { echo "docker-base: ${images[*]} present" >&2; exit 0; }

mkdir -p "$cache"
# One maker at a time: a second run waits and then finds the tarball (and maybe the images).
exec 9>"$cache/.docker-base.lock"
flock 9

make_rootfs() {
  [ "$(id -u)" -eq 0 ] || { echo "docker-base: debootstrap needs root" >&2; exit 1; }
  command -v debootstrap >/dev/null || "$root/scripts/deps.sh" docker
  r=$(mktemp -d "$cache/rootfs.XXXXXX")   # global: the EXIT trap removes it
  # debootstrap mounts /proc and /sys in the target; never remove through a mount it left.
  # (set -e holds in the trap too: finding no mount must not fail the run.)
  trap '{ grep -o " $r/[^ ]*" /proc/mounts || true; } | sort -r | xargs -r -n1 umount -l; rm -rf "$r"' EXIT
  echo "docker-base: debootstrap --variant=minbase bookworm (about a minute)" >&2
  if ! debootstrap --variant=minbase bookworm "$r" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log" >&2
    echo "docker-base: debootstrap failed; full log: $cache/debootstrap.log" >&2
    exit 1
  fi
  # The official image's apt sources (updates and security too), in deb822 form.
  rm -f "$r/etc/apt/sources.list"
  local sec=${mirror%/debian}/debian-security
  cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # Slim it like the official -slim image, and keep later installs slim.
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
         "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/usr/share/man/* "$r"/usr/share/info/* \
         "$r"/usr/share/locale/* "$r"/usr/share/groff/* "$r"/usr/share/lintian/*
  find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  mkdir -p "$r/etc/dpkg/dpkg.cfg.d"
  { for p in doc man groff info lintian locale; do echo "path-exclude /usr/share/$p/*"; done
    echo 'path-include /usr/share/doc/*/copyright'; } >"$r/etc/dpkg/dpkg.cfg.d/docker"
  # Containers get their own /dev and resolv.conf; apt needs no recommends in an image.
  rm -rf "${r:?}"/dev/* "$r/etc/resolv.conf" "$r/etc/hostname"
  echo 'APT::Install-Recommends "false";' >"$r/etc/apt/apt.conf.d/90docker-no-recommends"
  # mktemp -d made the target 0700: the image's / would be closed to every user but root.
  chmod 0755 "$r"
  tar --numeric-owner -C "$r" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
}

# A tarball whose / is not 0755 (made before that was set) gives images a non-root user cannot
# run anything in: made again.
root_mode() { tar -tvf "$tarball" 2>/dev/null | awk 'NR == 1 { print $1; exit }' || true; }
if [ -s "$tarball" ] && [ "$(root_mode)" != "drwxr-xr-x" ]; then
  echo "docker-base: $tarball has / as $(root_mode), not drwxr-xr-x: making it again" >&2
  rm -f "$tarball"
fi
if [ ! -s "$tarball" ]; then
  make_rootfs
fi
# Imported once, tagged twice: the same layer serves both names.
id=$(docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' "$tarball" "${missing[0]}")
for i in "${missing[@]:1}"; do docker tag "$id" "$i"; done
echo "docker-base: imported ${missing[*]} from $tarball" >&2
