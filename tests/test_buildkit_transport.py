"""BuildKit through our own gRPC client, against a real private dockerd + registry.

The integration fixture starts dockerd (vfs, no bridge network) and a loopback
registry with scripts/services/*.sh, pushes a debootstrapped Debian base image,
and tears everything down at the end of the session. First run on a machine
spends ~30 s on debootstrap (cached under ~/.cache/layerkit afterwards).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from fixtures_services import Services, container_output, refused_port

from layerkit.build._proto import buildkit_ops_pb2 as pb
from layerkit.build.client import BuildkitClient
from layerkit.build.llb import DefinitionBuilder, dockerfile_inputs
from layerkit.build.transport import DockerBridge, open_transport, parse_address
from layerkit.errors import DaemonError, SpecError


@pytest.fixture(scope="session")
def buildkit(services: Services) -> Iterator[BuildkitClient]:
    with BuildkitClient(f"docker://{services.docker_host}") as client:
        yield client


@pytest.mark.integration
def test_list_workers_reports_linux_amd64(buildkit: BuildkitClient) -> None:
    workers = buildkit.list_workers()
    assert workers, "dockerd's BuildKit reported no workers"
    assert any("linux/amd64" in w.platforms for w in workers), workers


@pytest.mark.integration
def test_capabilities_of_embedded_buildkit(buildkit: BuildkitClient) -> None:
    # What every dockerd's builder has; which engine pushes itself: test_engine26, test_engine_classic.
    caps = buildkit.capabilities()
    assert caps.embedded_in_docker
    assert caps.default_exporter == "moby" and "moby" in caps.exporters
    assert "registry" in caps.cache_imports
    # Docker 20.10 (BuildKit 0.8) has no Info RPC: info() must degrade to None, not raise.
    info = buildkit.info()
    assert info is None or info.version


@pytest.mark.integration
def test_dockerfile_solve_without_session_exports_to_dockerd(
    services: Services, buildkit: BuildkitClient
) -> None:
    tag = f"localhost/layerkit-it:{uuid.uuid4().hex[:12]}"
    marker = uuid.uuid4().hex  # fresh RUN each session, so the first solve really executes
    dockerfile = f"FROM {services.base_image}\nRUN echo hi > /x && echo {marker} > /marker\n"

    def build() -> dict[str, bool]:
        result = buildkit.solve(
            frontend="dockerfile.v0",
            # The builtin dockerfile frontend of Docker 20.10 rejects RUN --network;
            # this attr is what `docker build --network none` sends instead.
            frontend_attrs={"force-network-mode": "none"},
            frontend_inputs=dockerfile_inputs(dockerfile),
            exporter="moby",
            exporter_attrs={"name": tag},
            timeout=1800,  # bounds a hang only
        )
        assert result.exporter_response.get("containerimage.digest", "").startswith("sha256:")
        return {v.name: v.cached for v in result.vertexes.values()}

    run_step = f"[2/2] RUN echo hi > /x && echo {marker} > /marker"
    first = build()
    assert first.get(run_step) is False, first
    second = build()
    assert second.get(run_step) is True, second

    engine = docker.DockerClient(base_url=services.docker_host)
    try:
        engine.images.get(tag)
        out = container_output(engine, tag, ["cat", "/x"])
        assert out == b"hi\n"
    finally:
        engine.images.remove(tag, force=True)
        engine.close()


@pytest.mark.parametrize(
    "addr",
    [
        "unix:///nonexistent/layerkit/buildkitd.sock",
        "docker://unix:///nonexistent/layerkit/docker.sock",
        "tcp://127.0.0.1:{port}",
    ],
)
def test_unreachable_daemon_fails_fast_with_clear_error(addr: str) -> None:
    addr = addr.format(port=refused_port())
    # Fails on the refusal itself, not on the deadline (that would read "timed out").
    with pytest.raises(DaemonError, match=r"cannot reach .*(No such file|refused)"):
        open_transport(addr, timeout=10)


def test_docker_engine_without_grpc_endpoint_is_reported(tmp_path: Path) -> None:
    """Something answers on the socket but refuses the h2c upgrade (old or proxied engine)."""
    sock_path = tmp_path / "fake.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        body = b'{"message":"page not found"}'
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.close()

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    with pytest.raises(
        DaemonError, match=r"refused the BuildKit /grpc upgrade: HTTP/1.1 404.*page not found"
    ):
        open_transport(f"docker://unix://{sock_path}", timeout=5)
    t.join(timeout=2)
    server.close()


def test_parse_address_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDKIT_HOST", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/x.sock")
    assert str(parse_address(None)) == "docker://unix:///run/x.sock"
    assert parse_address("unix:///run/buildkit/buildkitd.sock").target == "/run/buildkit/buildkitd.sock"
    assert parse_address("tcp://127.0.0.1:1234").target == "127.0.0.1:1234"
    monkeypatch.setenv("BUILDKIT_HOST", "tcp://127.0.0.2:9")
    assert parse_address(None).kind == "tcp"
    for bad in ("ssh://host", "tcp://nohost", "unix://relative.sock", "docker://npipe:////./pipe/x"):
        with pytest.raises(SpecError):
            parse_address(bad)


def test_bridge_forwards_early_bytes_and_pumps_both_ways(tmp_path: Path) -> None:
    """Bytes dockerd sends right behind the 101 (its HTTP/2 SETTINGS) must not be lost."""
    sock_path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen(1)
    seen: list[bytes] = []

    def engine() -> None:
        conn, _ = server.accept()
        seen.append(conn.recv(4096))
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nEARLY")
        while data := conn.recv(4096):
            conn.sendall(data.upper())
        conn.close()

    t = threading.Thread(target=engine, daemon=True)
    t.start()
    bridge = DockerBridge(f"unix://{sock_path}")
    try:
        assert oct(os.stat(os.path.dirname(bridge.path)).st_mode & 0o777) == "0o700"
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(60)  # bounds a hang only
            client.connect(bridge.path)
            assert client.recv(5) == b"EARLY"
            client.sendall(b"ping")
            assert client.recv(4) == b"PING"
        request = seen[0].decode()
        assert request.startswith("POST /grpc HTTP/1.1\r\n")
        assert "Upgrade: h2c\r\n" in request and "Connection: Upgrade\r\n" in request
    finally:
        bridge.close()
        server.close()
    assert not os.path.exists(bridge.path)


def test_llb_definition_is_deterministic_and_ends_with_return_op() -> None:
    def build() -> pb.Definition:
        b = DefinitionBuilder()
        return b.definition(b.files({"/etc/a/b": b"x", "/c": b"y"}))

    one, two = build(), build()
    assert one.SerializeToString(deterministic=True) == two.SerializeToString(deterministic=True)
    ops = [pb.Op.FromString(raw) for raw in getattr(one, "def")]
    file_op = ops[0].file
    assert not ops[0].inputs  # on scratch
    assert [a.WhichOneof("action") for a in file_op.actions] == ["mkdir", "mkfile", "mkfile"]
    assert [a.output for a in file_op.actions] == [-1, -1, 0]
    assert [a.input for a in file_op.actions] == [-1, 0, 1]  # scratch, then previous action's result
    ret = ops[-1]
    assert ret.WhichOneof("op") is None and len(ret.inputs) == 1
    digest = "sha256:" + hashlib.sha256(getattr(one, "def")[0]).hexdigest()
    assert ret.inputs[0].digest == digest and digest in one.metadata
