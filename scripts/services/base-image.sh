#!/usr/bin/env bash
# Build a tiny Debian base image without Docker Hub (unreachable here) and push it
# to a local registry, so BuildKit can resolve `FROM localhost:PORT/debian:bookworm`.
# Debian 12 (bookworm) minbase plus python3, python3-venv and ca-certificates: what layerkit's
# py-rattler installer image needs, so env stages build with no network but the site's mirrors.
# Debian 11 (bullseye) minbase plus python3 (3.9) and ca-certificates: a base shaped like the
# real ones, whose Python is too old for the installer.
# bookworm-inference: Debian 12 minbase plus python3-venv (3.11) and nginx-light, shaped like
# Azure ML's inference bases (a real Python, nginx from the distro): the inference e2e tests.
# bookworm-minbase: Debian 12 minbase and nothing more (the arm64 half of the multi-arch base).
# bookworm-unpacked: bookworm-minbase plus python3-venv's packages unpacked without their
# maintainer scripts (see unpack_debs): for arm64, a Python in a minute instead of 12 under QEMU.
#
#   base-image.sh [--arch ARCH] DOCKER_HOST REGISTRY_HOSTPORT [REPO:TAG] [SUITE]
#     e.g. base-image.sh unix:///tmp/d/docker.sock 127.0.0.1:5000
#   prints the pushed reference (default localhost:PORT/debian:bookworm)
#   base-image.sh [--arch ARCH] --tarball SUITE: only make the cached rootfs tarball; print its path
#
# --arch: a Debian architecture (amd64, arm64); default this machine's. Another architecture's
# rootfs is debootstrapped with --foreign, and its second stage (the packages' maintainer
# scripts) runs in a chroot under QEMU (scripts/services/binfmt.sh registers it).
#
# The debootstrap rootfs (~2-3 min to build; for arm64, bookworm-minbase ~1.5 min, but bookworm
# ~12 min, 4 of them CPU: py3compile and update-ca-certificates under QEMU) is cached as a tarball
# under ${LAYERKIT_CACHE:-~/.cache/layerkit}, one per suite and architecture; later runs only
# import + push (seconds).
set -euo pipefail

host_arch=$(dpkg --print-architecture)
arch=$host_arch
if [[ ${1:-} == --arch ]]; then
  [[ $# -ge 2 ]] || { echo "usage: $0 --arch ARCH ..." >&2; exit 2; }
  arch=$2
  shift 2
fi
case $arch in
  amd64 | arm64) ;;
  *) echo "$0: unsupported architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
esac
tarball_only=
if [[ ${1:-} == --tarball ]]; then
  [[ $# -eq 2 ]] || { echo "usage: $0 --tarball SUITE" >&2; exit 2; }
  tarball_only=1
  suite=$2
else
  [[ $# -ge 2 ]] || { echo "usage: $0 DOCKER_HOST REGISTRY_HOSTPORT [REPO:TAG] [SUITE]" >&2; exit 2; }
  docker_host=$1
  registry=$2
  port=${registry##*:}
  # "localhost" rather than 127.0.0.1: both dockerd and BuildKit treat localhost
  # registries as plain-HTTP without any --insecure-registry flag.
  ref=localhost:$port/${3:-debian:bookworm}
  suite=${4:-bookworm}
fi
case $suite in
  bookworm) include=python3-venv,ca-certificates; name=py3-ca ;;
  bullseye) include=python3,ca-certificates; name=py39-ca ;;
  bookworm-inference) include=python3-venv,ca-certificates,nginx-light; name=py3-nginx ;;
  bookworm-minbase) include=; name=plain ;;
  bookworm-unpacked) include=python3-venv; name=py3-unpacked ;;
  *) echo "$0: unknown suite $suite (bookworm, bullseye, bookworm-inference, bookworm-minbase or bookworm-unpacked)" >&2; exit 2 ;;
esac
release=${suite%%-*}  # the Debian release debootstrap fetches; the rest names the variant
cache_dir=${LAYERKIT_CACHE:-$HOME/.cache/layerkit}
tarball=$cache_dir/debian-$release-minbase-$name-$arch.tar

# Use the mirror apt already uses on this machine (deb822 or one-line format).
apt_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -vE 'security|updates' | grep -E '/debian/?$' | head -n1 || true)
  [[ -n $uri ]] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# unpack_debs ROOT DIR: unpack each .deb in DIR whose package ROOT's dpkg does not list into
# ROOT, on this machine, without maintainer scripts (no QEMU). What those would have done is
# missing: dpkg's record of the packages, byte-compiled .pyc files, the CA bundle that
# update-ca-certificates writes. Python runs, and python3 -m venv works.
unpack_debs() {
  local root=$1 deb pkg have
  have=$(sed -n 's/^Package: //p' "$root/var/lib/dpkg/status" | sort -u)
  for deb in "$2"/*.deb; do
    pkg=$(dpkg-deb -f "$deb" Package)
    grep -qxF "$pkg" <<<"$have" && continue
    echo "I: Unpacking $pkg (no maintainer scripts)"
    # --keep-directory-symlink: /lib, /bin, /sbin are symlinks into /usr (merged /usr); a
    # package's ./lib/ entry must not replace them with directories.
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$root"
  done
}

if [[ ! -s $tarball ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "debootstrap needs root" >&2; exit 1; }
  if ! command -v debootstrap >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  fi
  mkdir -p "$cache_dir"
  work=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "debootstrap $release minbase $arch (a few minutes, once; cached as $tarball)" >&2
  if [[ $suite == *-unpacked ]]; then
    minbase=$(bash "${BASH_SOURCE[0]}" --arch "$arch" --tarball "$release-minbase")
    {
      debootstrap --arch="$arch" --download-only --variant=minbase --include="$include" \
        "$release" "$work/dl" "$(apt_mirror)" \
        && mkdir "$work/root" && tar -C "$work/root" -xf "$minbase" \
        && unpack_debs "$work/root" "$work/dl/var/cache/apt/archives" && rm -rf "$work/dl"
    } >"$work/debootstrap.log" 2>&1 &
  elif [[ $arch == "$host_arch" ]]; then
    debootstrap --variant=minbase ${include:+--include="$include"} "$release" "$work/root" "$(apt_mirror)" >"$work/debootstrap.log" 2>&1 &
  else
    bash "$(dirname "${BASH_SOURCE[0]}")/binfmt.sh" >/dev/null
    # First stage: download and unpack on this machine; second: configure under QEMU.
    {
      debootstrap --arch="$arch" --foreign --variant=minbase ${include:+--include="$include"} \
        "$release" "$work/root" "$(apt_mirror)" \
        && chroot "$work/root" /debootstrap/debootstrap --second-stage
    } >"$work/debootstrap.log" 2>&1 &
  fi
  boot=$!
  # Progress on stderr: debootstrap's latest step (I: Retrieving/Extracting/Installing ...).
  last=
  while kill -0 "$boot" 2>/dev/null; do
    sleep 2
    step=$(grep -E '^I: ' "$work/debootstrap.log" 2>/dev/null | tail -n 1 || true)
    if [[ -n $step && $step != "$last" ]]; then echo "  debootstrap: ${step#I: }" >&2; last=$step; fi
  done
  wait "$boot" || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  # apt lists and caches are ~40 MB of noise in every layer built on top.
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin "$work/root/var/cache/apt/archives/"*.deb
  # Sorted, numeric-owner tar so the cached tarball is stable across rebuilds.
  tar -C "$work/root" --numeric-owner --sort=name -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$tarball"
fi

if [[ -n $tarball_only ]]; then echo "$tarball"; exit 0; fi

# Already in the registry (e.g. a second test session on the same registry dir)?
repo_tag=${ref#*/}
if python3 - "$registry" "${repo_tag%%:*}" "${repo_tag##*:}" <<'PY' 2>/dev/null
import sys, urllib.request
host, repo, tag = sys.argv[1:]
# Docker 26 (containerd image store) pushes an OCI manifest; the registry answers 404 to a
# HEAD that does not accept its media type.
req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD", headers={
    "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
              "application/vnd.docker.distribution.manifest.v2+json, "
              "application/vnd.docker.distribution.manifest.list.v2+json"})
urllib.request.urlopen(req, timeout=5)
PY
then echo "$ref"; exit 0; fi

export DOCKER_HOST=$docker_host
# --platform: else the image config says this machine's architecture, whatever the rootfs holds.
docker import --platform "linux/$arch" --change 'CMD ["/bin/bash"]' "$tarball" "$ref" >/dev/null
docker push "$ref" >/dev/null
# Drop the local tag: dockerd's BuildKit prefers a local image of the same name,
# and builds should resolve the base from the registry like any remote image.
docker rmi "$ref" >/dev/null
echo "$ref"
