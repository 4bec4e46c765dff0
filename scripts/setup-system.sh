#!/usr/bin/env bash
# System packages the build tests and `make demo` need on a fresh Debian 12 machine:
# make, gcc (test packages are compiled), Debian 12's docker.io (dockerd 20.10 for the smoke
# test, and the runc and docker CLI that Docker 26 uses too), docker-registry and debootstrap
# (the local base image), git (pre-commit and check tests), openssl (test certificates).
# Installs only what is missing.
# Then Docker 26 from Debian 13, the engine of the demo, `make services` and the e2e tests,
# unpacked into a private prefix under ${LAYERKIT_CACHE:-~/.cache/layerkit}
# (scripts/services/engine26.sh; nothing installed system-wide, cached after the first run),
# and cosign 2.5 from Debian 13 the same way (scripts/services/cosign.sh: the signing tests),
# and kubectl 1.32 likewise (scripts/services/kubectl.sh: `kubectl kustomize` in test_deploy).
# Then the inference tests' base rootfs (Debian 12 + python3-venv + nginx-light, debootstrapped
# once and cached: scripts/services/base-image.sh bookworm-inference); their PyPI mirror is
# filled from PyPI by the tests themselves (tests/fixtures_inference.py, cached likewise).
# Multi-platform (arm64 under QEMU): qemu-user-static and binfmt-support with qemu-aarch64
# registered for containers (scripts/services/binfmt.sh), gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross (the test channel's static aarch64 binary), and the arm64 Debian 12
# minbase rootfs (base-image.sh --arch arm64 bookworm-minbase: ~1.5 min once, then cached).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for cmd in make:make gcc:gcc git:git openssl:openssl dockerd:docker.io docker-registry:docker-registry debootstrap:debootstrap \
  aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu /usr/aarch64-linux-gnu/lib/libc.a:libc6-dev-arm64-cross; do
  # A command on PATH, or a file (a static library) by its absolute path.
  command -v "${cmd%%:*}" >/dev/null || [[ -e ${cmd%%:*} ]] || need+=("${cmd##*:}")
done
if ((${#need[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "setup-system.sh: need root to apt-get install ${need[*]}" >&2; exit 1; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$(dirname "${BASH_SOURCE[0]}")/services/engine26.sh" >/dev/null
bash "$(dirname "${BASH_SOURCE[0]}")/services/cosign.sh" >/dev/null
bash "$(dirname "${BASH_SOURCE[0]}")/services/kubectl.sh" >/dev/null
bash "$(dirname "${BASH_SOURCE[0]}")/services/base-image.sh" --tarball bookworm-inference >/dev/null
bash "$(dirname "${BASH_SOURCE[0]}")/services/binfmt.sh" >/dev/null
bash "$(dirname "${BASH_SOURCE[0]}")/services/base-image.sh" --arch arm64 --tarball bookworm-minbase >/dev/null
