#!/usr/bin/env bash
# Private dockerd for integration tests and local BuildKit work.
#
#   dockerd.sh start  DIR   start (idempotent); prints the DOCKER_HOST url
#   dockerd.sh stop   DIR   stop by pidfile (idempotent), then unmount what is left under DIR
#   dockerd.sh status DIR   exit 0 and print DOCKER_HOST if the socket answers
#
# Everything (data-root, exec-root, socket, pidfile, log) lives under DIR so several
# instances can coexist and a test session can throw the whole thing away.
# Networking is off (no bridge, no iptables): the sandbox has no NAT and tests
# only need `--network none` containers and a loopback registry.
#
# DOCKERD_ENGINE=26 (the default): Docker 26 from Debian 13, unpacked by engine26.sh into a
# private prefix, with the containerd image store (containerd-snapshotter) on overlayfs; the
# prefix's managed containerd comes first on PATH; the prefix has no runc, so `runc` on PATH is
# Debian 12's (docker.io). DOCKERD_ENGINE=26-classic: the same Docker 26 on its classic image
# store (overlay2). DOCKERD_ENGINE=20: Debian 12's dockerd 20.10 on vfs.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$(realpath -m "$2")
sock="$dir/docker.sock"
pidfile="$dir/docker.pid"
log="$dir/dockerd.log"
# Only bounds a daemon that hangs: a loaded machine (dockerd 26 also starts its containerd)
# can take well over a minute.
start_timeout=${DOCKERD_START_TIMEOUT:-300}

need_root() { [[ $(id -u) -eq 0 ]] || { echo "dockerd.sh: must run as root" >&2; exit 1; }; }

# apt only when something is missing: keeps repeated starts fast.
ensure_installed() {
  command -v dockerd >/dev/null && command -v containerd >/dev/null && command -v runc >/dev/null && return
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq docker.io >/dev/null || { apt-get update -qq && apt-get install -y -qq docker.io >/dev/null; }
}

# The socket answering /_ping is the only reliable readiness signal: the pidfile and
# socket file both appear before the API is served.
answers() {
  [[ -S $sock ]] || return 1
  python3 - "$sock" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
head = b""
while len(head) < 12 and (chunk := s.recv(64)):  # a reply may come in pieces
    head += chunk
sys.exit(0 if head.startswith(b"HTTP/1.1 200") else 1)
PY
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

engine=${DOCKERD_ENGINE:-26}
case $engine in 20|26|26-classic) ;; *) echo "dockerd.sh: DOCKERD_ENGINE must be 20, 26 or 26-classic, not $engine" >&2; exit 2 ;; esac

# User-defined networks (`layerkit serve` makes one) get their subnets from this range rather
# than Docker's 31 defaults (172.17-31/16, 192.168/20s), which bridges left by other daemons on
# the host can use up: a subnet is only handed out if no host route overlaps it.
pool_base=${DOCKERD_POOL_BASE:-10.201.0.0/16}
pools="\"default-address-pools\": [{\"base\": \"$pool_base\", \"size\": 24}]"

# The host bridges of the daemon's own networks (br-<id12>, or the name the network asked for).
# dockerd leaves them on the host when it exits, so stop deletes them after the daemon is gone.
own_bridges() {
  [[ -S $sock ]] || return 0
  python3 - "$sock" <<'PY' 2>/dev/null || true
import http.client, json, socket, sys
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(3)  # a hung daemon must not eat stop's time budget
        self.sock.connect(sys.argv[1])
c = Conn("docker")
c.request("GET", "/networks")
for n in json.loads(c.getresponse().read()):
    if n.get("Driver") == "bridge" and n.get("Name") not in ("bridge", "host", "none"):
        opts = n.get("Options") or {}
        name = opts.get("com.docker.network.bridge.name") or "br-" + n["Id"][:12]
        if name.startswith("br-"):  # never a host bridge a network was told to use (docker0)
            print(name)
PY
}

case $cmd in
  start)
    need_root
    if running_pid >/dev/null && answers; then echo "unix://$sock"; exit 0; fi
    ensure_installed
    mkdir -p "$dir/data" "$dir/exec"
    rm -f "$pidfile" "$sock"
    # setsid: detach from the caller's process group so a Ctrl-C in the test
    # runner does not kill the daemon mid-write; stop is explicit.
    if [[ $engine == 26* ]]; then
      prefix=$("$(dirname "${BASH_SOURCE[0]}")/engine26.sh")
      if [[ $engine == 26-classic ]]; then
        # Docker's classic image store (graph drivers): what most Docker 24-27 installs run.
        echo "{$pools}" >"$dir/daemon.json"; driver=overlay2
      else
        echo "{\"features\": {\"containerd-snapshotter\": true}, $pools}" >"$dir/daemon.json"; driver=overlayfs
      fi
      PATH="$prefix/usr/bin:$prefix/usr/sbin:$PATH" setsid "$prefix/usr/sbin/dockerd" \
        --config-file "$dir/daemon.json" \
        --iptables=false --ip6tables=false --bridge=none --storage-driver="$driver" \
        --data-root "$dir/data" --exec-root "$dir/exec" \
        -H "unix://$sock" --pidfile "$pidfile" >"$log" 2>&1 </dev/null &
    else
      setsid dockerd \
        --default-address-pool "base=$pool_base,size=24" \
        --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
        --data-root "$dir/data" --exec-root "$dir/exec" \
        -H "unix://$sock" --pidfile "$pidfile" >"$log" 2>&1 </dev/null &
    fi
    pid=$!
    deadline=$((SECONDS + start_timeout))
    until answers; do
      if exited "$pid"; then
        echo "dockerd exited during start; last log lines:" >&2; tail -n 20 "$log" >&2; exit 1
      fi
      if ((SECONDS > deadline)); then
        echo "dockerd did not answer on $sock within ${start_timeout}s; see $log" >&2; exit 1
      fi
      sleep 0.1
    done
    echo "unix://$sock"
    ;;
  stop)
    bridges=()
    if pid=$(running_pid); then
      mapfile -t bridges < <(own_bridges)
      kill "$pid"
      # dockerd stops its containers and containerd first; give it time, then force. Either
      # way it is gone when this returns. Both waits stay under the test fixtures' 60 s bound.
      if ! wait_exited "$pid" 30; then
        echo "dockerd $pid ignored SIGTERM for 30s; sending SIGKILL" >&2
        kill -9 "$pid" 2>/dev/null || true
        wait_exited "$pid" 20 || { echo "dockerd $pid survived SIGKILL for 20s" >&2; exit 1; }
      fi
    fi
    rm -f "$pidfile"
    for b in "${bridges[@]}"; do
      [[ -e /sys/class/net/$b ]] && ip link delete "$b" 2>/dev/null || true
    done
    # A daemon that was killed (tests/test_faults.py does) leaves its build mounts (BuildKit's
    # executor rootfs, cache mounts) and its data-root bind mount behind, and a restarted one
    # does not take them back: unmount everything under DIR, deepest first.
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    ;;
  status)
    if running_pid >/dev/null && answers; then echo "unix://$sock"; else echo "not running" >&2; exit 1; fi
    ;;
  *) usage ;;
esac
