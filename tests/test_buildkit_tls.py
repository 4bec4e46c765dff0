"""TLS to a tcp:// BuildKit daemon: real certificates (openssl), a real grpc TLS server.

No buildkitd binary can be had on this machine, so the server side is a grpc server
that answers Control.ListWorkers/Info the way buildkitd does; what is under test is our
client's TLS: CA verification, server-name override, mutual TLS and the error messages.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from layerkit.build._proto import buildkit_control_pb2 as control
from layerkit.build._proto import buildkit_control_pb2_grpc as control_grpc
from layerkit.build._proto import buildkit_ops_pb2 as pb
from layerkit.build._proto import buildkit_worker_pb2 as worker
from layerkit.build.client import BuildkitClient
from layerkit.build.tls import TLSConfig
from layerkit.errors import DaemonError, SpecError


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", key, "-out", crt)  # fmt: skip
    return crt, key


def _leaf(d: Path, name: str, ca: tuple[Path, Path], usage: str) -> tuple[Path, Path]:
    key, csr, crt, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage={usage}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", key, "-out", csr)
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "2",
             "-extfile", ext, "-out", crt)  # fmt: skip
    return crt, key


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    client: tuple[Path, Path]
    server: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = _ca(d, "layerkit-test-ca")
    return Pki(
        ca=ca[0],
        other_ca=_ca(d, "unrelated-ca")[0],
        client=_leaf(d, "client", ca, "clientAuth"),
        server=_leaf(d, "buildkitd.test", ca, "serverAuth"),
    )


class _Control(control_grpc.ControlServicer):  # type: ignore[misc]
    def ListWorkers(self, request: object, context: object) -> control.ListWorkersResponse:
        rec = worker.WorkerRecord(
            ID="w1",
            Labels={"org.mobyproject.buildkit.worker.executor": "oci"},
            platforms=[pb.Platform(OS="linux", Architecture="amd64")],
        )
        return control.ListWorkersResponse(record=[rec])

    def Info(self, request: object, context: object) -> control.InfoResponse:
        resp = control.InfoResponse()
        resp.buildkitVersion.version = "v0.16.0"
        return resp


def _serve(pki: Pki, require_client_auth: bool) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    control_grpc.add_ControlServicer_to_server(_Control(), server)
    creds = grpc.ssl_server_credentials(
        [(pki.server[1].read_bytes(), pki.server[0].read_bytes())],
        root_certificates=pki.ca.read_bytes(),
        require_client_auth=require_client_auth,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.stop(0)


@pytest.fixture
def mtls_daemon(pki: Pki) -> Iterator[str]:
    yield from _serve(pki, require_client_auth=True)


@pytest.fixture
def tls_daemon(pki: Pki) -> Iterator[str]:
    yield from _serve(pki, require_client_auth=False)


def test_mutual_tls_connects_and_detects_a_standalone_daemon(mtls_daemon: str, pki: Pki) -> None:
    tls = TLSConfig(pki.ca, pki.client[0], pki.client[1], "buildkitd.test")
    with BuildkitClient(mtls_daemon, tls=tls, timeout=60) as client:
        assert [w.id for w in client.list_workers()] == ["w1"]
        caps = client.capabilities()
    assert not caps.embedded_in_docker
    assert caps.version == "v0.16.0"
    assert caps.default_exporter == "image"


def test_server_only_tls_needs_no_client_certificate(tls_daemon: str, pki: Pki) -> None:
    with BuildkitClient(tls_daemon, tls=TLSConfig(ca=pki.ca, server_name="buildkitd.test"), timeout=60) as c:
        assert [w.id for w in c.list_workers()] == ["w1"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown CA", "certificate verify failed"),
        ("wrong name", "certificate verify failed"),
        ("no client certificate", "TLS handshake with BuildKit at tcp://"),
    ],
)
def test_tls_failures_are_reported_at_once_with_the_reason(
    mtls_daemon: str, pki: Pki, case: str, expected: str
) -> None:
    tls = {
        "unknown CA": TLSConfig(pki.other_ca, pki.client[0], pki.client[1], "buildkitd.test"),
        "wrong name": TLSConfig(pki.ca, pki.client[0], pki.client[1], "elsewhere.test"),
        "no client certificate": TLSConfig(pki.ca, server_name="buildkitd.test"),
    }[case]
    with pytest.raises(DaemonError) as err:
        BuildkitClient(mtls_daemon, tls=tls, timeout=60)
    # The probe's own message, not grpc's "did not become ready" after the deadline.
    assert expected in str(err.value)
    assert "--tls-ca" in str(err.value) and "did not become ready" not in str(err.value)


def test_tls_options_from_environment_and_flags(tmp_path: Path) -> None:
    env = {"LAYERKIT_TLS_CA": "/ca.pem", "LAYERKIT_TLS_SERVER_NAME": "bk"}
    assert TLSConfig.from_options(environ=env) == TLSConfig(
        ca=Path("/ca.pem"), server_name="bk", explicit=False
    )
    assert TLSConfig.from_options(ca="/x.pem", environ=env) == TLSConfig(ca=Path("/x.pem"), server_name="bk")
    assert TLSConfig.from_options(environ={}) is None
    with pytest.raises(SpecError, match="go together"):
        TLSConfig.from_options(cert="/c.pem", environ={})
    with pytest.raises(SpecError, match="tcp:// BuildKit addresses only"):
        BuildkitClient("unix:///nonexistent.sock", tls=TLSConfig(ca=tmp_path / "ca.pem"))
    # LAYERKIT_TLS_* in the environment are meant for tcp:// daemons: other addresses ignore them.
    inherited = TLSConfig.from_options(environ={"LAYERKIT_TLS_CA": str(tmp_path / "ca.pem")})
    assert inherited is not None and not inherited.explicit
    with pytest.raises(DaemonError, match="cannot reach"):
        BuildkitClient("unix:///nonexistent.sock", tls=inherited)


def test_build_cli_rejects_half_a_client_identity(cli, tmp_path: Path) -> None:
    spec = tmp_path / "layerkit.yaml"
    spec.write_text("name: t\nbase: {image: 'localhost:5000/debian:bookworm'}\nuser_managed: true\n")
    r = cli("build", spec, "--addr", "tcp://127.0.0.1:1", "--tls-cert", tmp_path / "c.pem")
    assert r.code == 2
    assert "--tls-cert with --tls-key" in r.err
