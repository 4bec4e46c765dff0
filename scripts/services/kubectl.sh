#!/usr/bin/env bash
# kubectl 1.32 (Debian 13 "trixie": the kubectl package, with kustomize built in)
# unpacked into a private prefix on a Debian 12 machine, no system upgrade (how: trixie.sh).
# tests/test_deploy.py renders `layerkit deploy`'s folder with `kubectl kustomize`; it finds
# the binary through $LAYERKIT_KUBECTL, PATH, or this prefix, and fails without it when CI=1.
#
#   kubectl.sh          fetch + unpack once; print the binary's path (a second run does nothing)
set -euo pipefail

cache_dir=${LAYERKIT_CACHE:-$HOME/.cache/layerkit}
# shellcheck source=trixie.sh
source "$(dirname "${BASH_SOURCE[0]}")/trixie.sh"
# No cluster is contacted: --client prints only the binary's own version.
trixie_tool kubectl version --client
