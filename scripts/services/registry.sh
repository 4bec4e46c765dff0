#!/usr/bin/env bash
# Private OCI registry (Debian's docker-registry, distribution v2) on loopback.
#
#   registry.sh start  PORT DIR [--htpasswd FILE [--user NAME:PASSWORD]]
#   registry.sh stop   PORT DIR
#   registry.sh status PORT DIR
#
# Listens on 127.0.0.1:PORT only; blobs, config, pidfile and log live under DIR.
# --htpasswd FILE enables basic auth from FILE; with --user the FILE is (re)written
# with a bcrypt entry for that user first (distribution accepts bcrypt only).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status PORT DIR [--htpasswd FILE [--user NAME:PASSWORD]]" >&2; exit 2; }
[[ $# -ge 3 ]] || usage
cmd=$1 port=$2
dir=$(realpath -m "$3")
shift 3
htpasswd_file="" user=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --htpasswd) htpasswd_file=$(realpath -m "$2"); shift 2 ;;
    --user) user=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ $port =~ ^[0-9]+$ ]] || usage
pidfile="$dir/registry.pid"
log="$dir/registry.log"
config="$dir/config.yml"

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$@" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }
}

# /v2/ answers 200 (open) or 401 (auth on): either way the registry serves.
answers() {
  python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=2)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 401 else 1)
PY
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case $cmd in
  start)
    if running_pid >/dev/null && answers; then echo "127.0.0.1:$port"; exit 0; fi
    command -v docker-registry >/dev/null || apt_install docker-registry
    mkdir -p "$dir/data"
    auth=""
    if [[ -n $htpasswd_file ]]; then
      if [[ -n $user ]]; then
        command -v htpasswd >/dev/null || apt_install apache2-utils
        htpasswd -Bbc "$htpasswd_file" "${user%%:*}" "${user#*:}" 2>/dev/null
      fi
      [[ -f $htpasswd_file ]] || { echo "htpasswd file $htpasswd_file missing (pass --user to create it)" >&2; exit 1; }
      auth=$(printf 'auth:\n  htpasswd:\n    realm: layerkit-test\n    path: %s\n' "$htpasswd_file")
    fi
    # The packaged /etc/docker/registry/config.yml listens on :5000 on all interfaces
    # and stores under /var/lib; never use it.
    cat >"$config" <<YML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: layerkit-test-only
$auth
YML
    setsid docker-registry serve "$config" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 200); do
      answers && { echo "127.0.0.1:$port"; exit 0; }
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.05
    done
    echo "registry did not come up on 127.0.0.1:$port; last log lines:" >&2
    tail -n 20 "$log" >&2
    exit 1
    ;;
  stop)
    pid=$(running_pid) || { rm -f "$pidfile"; exit 0; }
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
  status)
    if running_pid >/dev/null && answers; then echo "127.0.0.1:$port"; else echo "not running" >&2; exit 1; fi
    ;;
  *) usage ;;
esac
