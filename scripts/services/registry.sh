#!/usr/bin/env bash
# Private OCI registry (Debian's docker-registry, distribution v2) on loopback.
#
#   registry.sh start  PORT DIR [--htpasswd FILE [--user NAME:PASSWORD]]
#   registry.sh stop   PORT DIR
#   registry.sh status PORT DIR
#
# Listens on 127.0.0.1:PORT only; blobs, config, pidfile and log live under DIR. start prints
# 127.0.0.1:PORT. PORT 0: the registry binds a free port itself (read back from its log and
# kept in DIR/registry.port), so no other process can take the port between a pick and the
# bind; status and a repeated start with 0 use the kept one.
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
portfile="$dir/registry.port"
start_timeout=${REGISTRY_START_TIMEOUT:-300}

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

# Port 0 names the running registry's own port, if one runs.
if [[ $port == 0 && -s $portfile ]] && running_pid >/dev/null; then port=$(cat "$portfile"); fi

case $cmd in
  start)
    if [[ $port != 0 ]] && running_pid >/dev/null && answers; then echo "127.0.0.1:$port"; exit 0; fi
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
    rm -f "$portfile"
    # Created here, not by the background job's redirection: the port poll below may read the
    # log before that job has run its first line.
    : >"$log"
    setsid docker-registry serve "$config" >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    # Ready when /v2/ answers; with port 0, once its log names the port it bound. The deadline
    # only bounds a registry that hangs: a loaded machine merely takes longer.
    deadline=$((SECONDS + start_timeout))
    until [[ $port != 0 ]] && answers; do
      if exited "$pid"; then
        echo "registry exited during start; last log lines:" >&2; tail -n 20 "$log" >&2; exit 1
      fi
      if ((SECONDS > deadline)); then
        echo "registry did not answer within ${start_timeout}s; last log lines:" >&2; tail -n 20 "$log" >&2; exit 1
      fi
      if [[ $port == 0 ]]; then
        port=$(sed -n 's/.*msg="listening on 127\.0\.0\.1:\([0-9][0-9]*\)".*/\1/p' "$log" | head -n 1)
        port=${port:-0}
      fi
      sleep 0.05
    done
    echo "$port" >"$portfile"
    echo "127.0.0.1:$port"
    ;;
  stop)
    pid=$(running_pid) || { rm -f "$pidfile" "$portfile"; exit 0; }
    kill "$pid"
    if ! wait_exited "$pid" 10; then
      kill -9 "$pid" 2>/dev/null || true
      wait_exited "$pid" 20 || { echo "registry $pid survived SIGKILL for 20s" >&2; exit 1; }
    fi
    rm -f "$pidfile" "$portfile"
    ;;
  status)
    if [[ $port != 0 ]] && running_pid >/dev/null && answers; then echo "127.0.0.1:$port"; else echo "not running" >&2; exit 1; fi
    ;;
  *) usage ;;
esac
