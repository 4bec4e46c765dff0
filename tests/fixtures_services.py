"""Real services for integration tests: a private dockerd, loopback registries and a
debootstrapped base image, all started with scripts/services/*.sh and stopped by PID.

conftest.py wraps these in session-scoped fixtures, so every test module shares one
dockerd. The first run on a machine spends a few minutes on debootstrap (cached under
~/.cache/layerkit afterwards).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

SERVICES = Path(__file__).resolve().parent.parent / "scripts" / "services"


@dataclass(frozen=True)
class Services:
    docker_host: str  # unix:///.../docker.sock
    registry: str  # localhost:PORT (anonymous)
    base_image: str  # localhost:PORT/debian:bookworm (minbase + python3-venv)
    root: Path  # scratch folder holding the services' state


@dataclass(frozen=True)
class AuthRegistry:
    address: str  # localhost:PORT, htpasswd basic auth
    username: str
    password: str = field(repr=False)


_HELD: list[socket.socket] = []


def refused_port() -> int:
    """A loopback port that refuses connections for the rest of the session: bound here and
    never listened on, so no other process (another engineer's registry) can take it, as one
    could a port merely found free. For addresses where nothing must answer."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return int(s.getsockname()[1])


def container_output(
    client: docker.DockerClient, image: str, command: list[str], *, user: str | None = None,
    network_mode: str | None = "none", platform: str | None = None,
) -> bytes:  # fmt: skip
    """A container's stdout, read as `docker run` reads it: attached before it starts, to the
    end of its stream. docker-py's run() follows the log file instead, which dockerd 20.10 can
    end before the last line is in it. platform: e.g. linux/arm64, for an image of another
    platform than the engine's (run under QEMU)."""
    kw = {"platform": platform} if platform else {}
    container = client.containers.create(image, command, user=user, network_mode=network_mode, **kw)
    try:
        # As `docker run` does: no log replay (logs=True can repeat what the stream then
        # delivers again, seen on Docker 26); attached before start, nothing is missed.
        stream = container.attach(stdout=True, stderr=False, stream=True, logs=False)
        container.start()
        out = b"".join(stream)
        code = container.wait()["StatusCode"]
    finally:
        container.remove(force=True)
    assert code == 0, f"{command} exited {code} in {image}: {out[-2000:]!r}"
    return out


def empty_engine(docker_host: str) -> None:
    """No image (base and installer images too) and no BuildKit cache record left in the engine:
    the next build is cold but for what it imports from a registry."""
    client = docker.APIClient(base_url=docker_host)
    try:
        for image in client.images(all=True):
            client.remove_image(image["Id"], force=True)
        client.prune_builds(all=True)
    finally:
        client.close()


def run_script(*args: str | Path, timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: starts a private dockerd and registry (scripts/services/*.sh)")


@contextmanager
def registry(root: Path, *, auth: bool = False) -> Iterator[AuthRegistry]:
    """A docker-registry on 127.0.0.1; with auth=True, basic auth for a random user. It binds
    a free port itself (port 0): no other process can take the port between a pick and the bind."""
    user, password = ("", "")
    extra: list[str] = []
    if auth:
        user, password = "lk-" + secrets.token_hex(3), secrets.token_urlsafe(18)
        extra = ["--htpasswd", str(root / "htpasswd"), "--user", f"{user}:{password}"]
    address = run_script(SERVICES / "registry.sh", "start", "0", root, *extra, timeout=600)
    port = address.rsplit(":", 1)[1]
    try:
        yield AuthRegistry(f"localhost:{port}", user, password)
    finally:
        subprocess.run([SERVICES / "registry.sh", "stop", "0", root], check=False, timeout=60)


@contextmanager
def dockerd_with_registry(
    base_repo: str = "debian:bookworm", registry_root: Path | None = None, engine: str | None = None
) -> Iterator[Services]:
    """base_repo: where the base is pushed in the registry; "library/debian:bookworm" makes the
    registry a Docker Hub mirror for `debian:bookworm` (mirrors.base_registry). registry_root:
    keep the registry's storage there across runs (the base image, and so its digest, stays).
    engine: "26" Docker 26 from Debian 13 (engine26.sh, containerd image store), "26-classic" the
    same on the classic image store, "20" Debian 12's dockerd 20.10; by default $DOCKERD_ENGINE,
    else 26 (as scripts/services/dockerd.sh)."""
    require_root()
    env = {"DOCKERD_ENGINE": engine or os.environ.get("DOCKERD_ENGINE") or "26"}
    # Short path under /tmp: containerd's sockets live below --exec-root and unix
    # socket paths are limited to 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="lk-it-", dir="/tmp"))
    try:
        docker_host = run_script(SERVICES / "dockerd.sh", "start", base / "d", timeout=600, env=env)
        try:
            with registry(registry_root or base / "r") as reg:
                port = reg.address.rsplit(":", 1)[1]
                image = run_script(
                    SERVICES / "base-image.sh", docker_host, f"127.0.0.1:{port}", base_repo, timeout=900
                )
                yield Services(docker_host, reg.address, image, base)
        finally:
            subprocess.run([SERVICES / "dockerd.sh", "stop", base / "d"], check=False, timeout=60)
    finally:
        shutil.rmtree(base, ignore_errors=True)
