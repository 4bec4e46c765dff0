#!/usr/bin/env bash
# Docker 26 (Debian 13 "trixie": docker.io 26.1.5, containerd 1.7.24, docker-cli,
# docker-buildx) unpacked into a private prefix on a Debian 12 machine, no system upgrade
# (how: trixie.sh).
#
#   engine26.sh          fetch + unpack once; print the prefix (a second run does nothing)
#
# The packages' shared-library needs are met by Debian 12's, except runc's: Debian 13's runc
# needs glibc 2.38, so the prefix's runc is deleted and dockerd.sh uses Debian 12's runc
# (docker.io).
set -euo pipefail

cache_dir=${LAYERKIT_CACHE:-$HOME/.cache/layerkit}
prefix=$cache_dir/engines/docker26

if [[ -f $prefix/.complete && -x $prefix/usr/sbin/dockerd ]]; then echo "$prefix"; exit 0; fi

# shellcheck source=trixie.sh
source "$(dirname "${BASH_SOURCE[0]}")/trixie.sh"

finish() {
  rm -f "$1/usr/sbin/runc" "$1/usr/bin/runc"
  "$1/usr/sbin/dockerd" --version >&2
}
trixie_unpack "$prefix" finish docker.io containerd docker-cli docker-buildx
echo "$prefix"
