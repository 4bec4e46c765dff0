#!/usr/bin/env bash
# cosign 2.5 (Debian 13 "trixie": the cosign package, a static Go binary) unpacked into a
# private prefix on a Debian 12 machine, no system upgrade (how: trixie.sh). The signing
# tests and `layerkit build --sign` use it; layerkit finds it through $LAYERKIT_COSIGN or PATH.
#
#   cosign.sh          fetch + unpack once; print the binary's path (a second run does nothing)
set -euo pipefail

cache_dir=${LAYERKIT_CACHE:-$HOME/.cache/layerkit}
# shellcheck source=trixie.sh
source "$(dirname "${BASH_SOURCE[0]}")/trixie.sh"
# `version` only prints what the binary was built as: no network, no home writes.
trixie_tool cosign version
