#!/usr/bin/env bash
# `make demo`: installs what is missing, starts a private dockerd + registry on 127.0.0.1,
# then locks, renders and builds the example environment (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
exec python3 scripts/demo.py
