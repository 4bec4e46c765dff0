"""`make services` / `make services-stop`: the documented way to get your own dockerd,
registry and base image on 127.0.0.1. Started with the real make, its printed addresses
must answer, and stopping must leave none of its processes behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import docker
import pytest
from fixtures_services import require_root

from layerkit.build.registry import MANIFEST_TYPES

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DOCKERD_ENGINE"}  # the default engine
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env=env,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def docker_ping(host: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(host.removeprefix("unix://"))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        head = b""
        while len(head) < 12 and (chunk := s.recv(64)):  # a reply may come in pieces
            head += chunk
        return head


def manifest_digest(port: str) -> str:
    """The digest the registry serves for library/debian:bookworm (an OCI manifest from
    Docker 26, a Docker v2 one from 20.10)."""
    head = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/library/debian/manifests/bookworm",
        method="HEAD",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    with urllib.request.urlopen(head, timeout=60) as r:
        assert r.status == 200
        return str(r.headers["Docker-Content-Digest"])


def test_make_services_prints_addresses_that_answer_and_stops_by_pid() -> None:
    require_root()
    state = Path(tempfile.mkdtemp(prefix="lk-svc-", dir="/tmp"))
    # Port 0: the registry binds a free port itself, which no other process can take first.
    args = (f"SERVICES_DIR={state}", "REGISTRY_PORT=0")
    pids: list[int] = []
    try:
        up = make("services", *args)
        assert up.returncode == 0, up.stderr[-3000:]
        out = dict(line.split("=", 1) for line in up.stdout.splitlines())
        assert set(out) == {
            "DOCKER_HOST",
            "REGISTRY",
            "BASE_REGISTRY",
            "BASE_IMAGE",
            "DOCKERD_PID",
            "REGISTRY_PID",
        }
        assert "layerkit build --addr docker://" in up.stderr and "make services-stop" in up.stderr
        assert out["DOCKER_HOST"].startswith(f"unix://{state}/")
        assert docker_ping(out["DOCKER_HOST"]).startswith(b"HTTP/1.1 200")
        # The default engine: Docker 26 with the containerd image store (DOCKERD_ENGINE=20: 20.10).
        engine = docker.APIClient(base_url=out["DOCKER_HOST"])
        assert engine.version()["Version"].startswith("26."), engine.version()
        assert ["driver-type", "io.containerd.snapshotter.v1"] in engine.info()["DriverStatus"]
        engine.close()
        registry = out["REGISTRY"]
        host, port = registry.split(":")
        assert host == "localhost" and out["BASE_REGISTRY"] == registry
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=60) as r:
            assert r.status == 200
        # The base is where mirrors.base_registry sends `debian:bookworm`.
        assert out["BASE_IMAGE"] == f"{registry}/library/debian:bookworm"
        base_digest = manifest_digest(port)
        pids = [int(out["DOCKERD_PID"]), int(out["REGISTRY_PID"])]
        assert all(alive(p) for p in pids)

        again = make("services", *args)  # idempotent: same services, same addresses
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stdout == up.stdout
        assert manifest_digest(port) == base_digest  # the base was not pushed again
    finally:
        down = make("services-stop", f"SERVICES_DIR={state}")
        shutil.rmtree(state, ignore_errors=True)
    assert down.returncode == 0, down.stderr[-3000:]
    assert not [p for p in pids if alive(p)]


def test_a_services_dir_too_long_for_unix_sockets_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    long_dir = tmp_path / ("x" * 70)
    proc = make("services", f"SERVICES_DIR={long_dir}")
    assert proc.returncode != 0 and proc.stdout == ""
    assert "SERVICES_DIR=/tmp/lk-services" in proc.stderr
    assert not os.path.exists(long_dir)
