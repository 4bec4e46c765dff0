#!/usr/bin/env bash
# `make services` / `make services-stop`: your own dockerd, registry and base image on
# 127.0.0.1, for building and pushing with layerkit on a machine without them.
#
#   up.sh start DIR [PORT]   start all three (idempotent); stdout, one KEY=VALUE a line:
#       DOCKER_HOST    the engine (layerkit build --addr docker://$DOCKER_HOST, or export it)
#       REGISTRY       a plain-HTTP registry: registry.address / --registry
#       BASE_REGISTRY  the same registry as a Docker Hub mirror: mirrors.base_registry
#       BASE_IMAGE     Debian 12 minbase + python3-venv, pushed as BASE_REGISTRY/library/debian:bookworm,
#                      so `base.image: debian:bookworm` (and conda.installer_image) pull it through the mirror
#       DOCKERD_PID, REGISTRY_PID
#   up.sh stop DIR           stop both by the PIDs recorded under DIR (idempotent)
#
# PORT: the registry's; default 5000 when free, else any free port; 0: any free port, bound by
# the registry itself (no other process can take it first). Kept in DIR/registry.port so a
# restart reuses it. The engine: Docker 26 with the containerd image store, or Debian 12's
# dockerd 20.10 with DOCKERD_ENGINE=20 (dockerd.sh). Needs root (dockerd). The first start
# debootstraps the base (~2 min) and fetches Docker 26, both cached under
# ${LAYERKIT_CACHE:-~/.cache/layerkit}.
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
cmd=$1
dir=$(realpath -m "$2")
here=$(dirname "${BASH_SOURCE[0]}")

# PORT if it is free now, else 0 (the registry then binds a free port itself).
free_or_any() {
  python3 - "$1" <<'PY'
import socket, sys
try:
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    print(sys.argv[1])
except OSError:
    print(0)
PY
}

case $cmd in
  start)
    # containerd's sockets live below DIR/d/exec; unix socket paths are limited to 108 bytes.
    if (( ${#dir} > 60 )); then
      echo "services dir $dir is too long for dockerd's unix sockets (> 60 characters); pass a short one, e.g. make services SERVICES_DIR=/tmp/lk-services" >&2
      exit 2
    fi
    mkdir -p "$dir"
    if [[ -n ${3:-} ]]; then port=$3
    elif [[ -s $dir/registry.port ]]; then port=$(cat "$dir/registry.port")
    else port=$(free_or_any 5000)
    fi
    [[ $port =~ ^[0-9]+$ ]] || usage
    echo "starting dockerd ${DOCKERD_ENGINE:-26} (state in $dir/d)" >&2
    docker_host=$("$here/dockerd.sh" start "$dir/d")
    echo "starting a registry (state in $dir/r)" >&2
    addr=$("$here/registry.sh" start "$port" "$dir/r")
    port=${addr##*:}
    echo "$port" >"$dir/registry.port"
    echo "pushing the base image (first time: debootstrap, about 2 minutes)" >&2
    base=$("$here/base-image.sh" "$docker_host" "127.0.0.1:$port" library/debian:bookworm)
    echo "DOCKER_HOST=$docker_host"
    echo "REGISTRY=localhost:$port"
    echo "BASE_REGISTRY=localhost:$port"
    echo "BASE_IMAGE=$base"
    echo "DOCKERD_PID=$(cat "$dir/d/docker.pid")"
    echo "REGISTRY_PID=$(cat "$dir/r/registry.pid")"
    cat >&2 <<MSG
services up. Build with: layerkit build --addr docker://$docker_host --network host SPEC
  in a spec layer: registry: {address: localhost:$port}; mirrors: {base_registry: localhost:$port};
  base: {image: debian:bookworm}  (the pushed base; conda.installer_image: debian:bookworm too)
stop with: make services-stop
MSG
    ;;
  stop)
    [[ $# -eq 2 ]] || usage
    port=$(cat "$dir/registry.port" 2>/dev/null || echo 0)
    "$here/registry.sh" stop "$port" "$dir/r"
    "$here/dockerd.sh" stop "$dir/d"
    echo "services under $dir stopped" >&2
    ;;
  *) usage ;;
esac
