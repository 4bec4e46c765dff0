"""gRPC channels to BuildKit, either direct or through a Docker engine.

Address forms (``parse_address``):

- ``unix:///run/buildkit/buildkitd.sock``  buildkitd on a unix socket
- ``tcp://127.0.0.1:1234``                 buildkitd on TCP, plain or with ``TLSConfig``
- ``docker://``                            the engine named by DOCKER_HOST (default
  /var/run/docker.sock); ``docker://unix:///x.sock`` / ``docker://tcp://h:p`` name it
- ``None``                                 BUILDKIT_HOST if set, else ``docker://``

dockerd serves its embedded BuildKit at ``POST /grpc`` only after an HTTP/1.1
``Upgrade: h2c`` handshake (what moby's ``DialHijack(ctx, "/grpc", "h2c", nil)``
does for buildx). grpcio cannot run a handshake before HTTP/2, so ``DockerBridge``
listens on a private unix socket and, per accepted connection, dials dockerd,
performs the upgrade, and then pumps raw bytes both ways.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import grpc

from layerkit.build.tls import TLSConfig
from layerkit.errors import DaemonError, SpecError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
NO_BRIDGE = "network bridge not found"  # dockerd --bridge=none, asked for the default network
ENGINE_HINT = (
    "start it, or name one with --addr docker://HOST (e.g. docker://unix:///run/user/1000/docker.sock) "
    "or DOCKER_HOST"
)


def no_engine(docker_host: str, why: str) -> str:
    """The one line for a Docker engine that does not answer: where, why, and how to name another."""
    return f"cannot reach the Docker engine at {docker_host} ({why}); {ENGINE_HINT}"


# dockerd's gRPC server keeps grpc-go's default 4 MiB receive limit, so a bigger
# request (huge inline LLB) must fail here with a clear RESOURCE_EXHAUSTED instead
# of being cut off by the daemon. Responses may be larger (buildkitd sends up to 16 MiB).
MAX_SEND_BYTES = 4 * 1024 * 1024
MAX_RECV_BYTES = 16 * 1024 * 1024
_HEADER_LIMIT = 64 * 1024
_CHUNK = 256 * 1024
_SPARE_MAX_AGE = 5.0

Kind = Literal["unix", "tcp", "docker"]


@dataclass(frozen=True)
class BuildkitAddress:
    """Where BuildKit is. ``target`` is a socket path, ``host:port``, or a DOCKER_HOST url."""

    kind: Kind
    target: str

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.target}"
        if self.kind == "tcp":
            return f"tcp://{self.target}"
        return f"docker://{self.target}"

    @property
    def engine_host(self) -> str:
        """The Docker engine that images built here land on (and run from): the one this
        address names, else $DOCKER_HOST's."""
        return self.target if self.kind == "docker" else os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST)


def parse_address(addr: str | None) -> BuildkitAddress:
    """Normalise a BuildKit address; raises SpecError for forms we cannot dial."""
    if not addr:
        addr = os.environ.get("BUILDKIT_HOST") or "docker://"
    if addr.startswith("docker://"):
        host = addr.removeprefix("docker://") or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        _docker_endpoint(host)  # validate early
        return BuildkitAddress("docker", host)
    if addr.startswith("unix://"):
        path = addr.removeprefix("unix://")
        if not path.startswith("/"):
            raise SpecError(f"BuildKit address {addr!r}: unix socket path must be absolute (unix:///path)")
        return BuildkitAddress("unix", path)
    if addr.startswith("tcp://"):
        parts = urlsplit(addr)
        if not parts.hostname or not parts.port:
            raise SpecError(f"BuildKit address {addr!r}: expected tcp://HOST:PORT")
        return BuildkitAddress("tcp", parts.netloc)
    raise SpecError(f"unsupported BuildKit address {addr!r}: use unix://, tcp:// or docker://")


def _docker_endpoint(host: str) -> str | tuple[str, int]:
    """Socket path or (host, port) for a DOCKER_HOST url."""
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    if host.startswith("tcp://"):
        if os.environ.get("DOCKER_TLS_VERIFY"):
            raise SpecError("Docker engine over TLS (DOCKER_TLS_VERIFY) is not supported yet")
        parts = urlsplit(host)
        if not parts.hostname or not parts.port:
            raise SpecError(f"Docker host {host!r}: expected tcp://HOST:PORT")
        return parts.hostname, parts.port
    raise SpecError(f"unsupported Docker host {host!r}: use unix:// or tcp://")


def dial(address: str | tuple[str, int], timeout: float, what: str) -> socket.socket:
    """Connect to a unix path or (host, port); OSError becomes a DaemonError naming ``what``."""
    try:
        if isinstance(address, tuple):
            return socket.create_connection(address, timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise DaemonError(f"cannot reach {what}: {reason}") from None


def upgrade_to_h2c(sock: socket.socket, docker_host: str) -> bytes:
    """Do dockerd's ``POST /grpc`` h2c upgrade on ``sock``.

    Returns any bytes that arrived after the 101 headers: dockerd starts its HTTP/2
    server right after writing the 101, so its SETTINGS frame can share our read.
    """
    host = "docker" if docker_host.startswith("unix://") else urlsplit(docker_host).netloc
    request = (
        "POST /grpc HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: layerkit\r\n"
        "Content-Length: 0\r\n"
        "Connection: Upgrade\r\n"
        "Upgrade: h2c\r\n"
        "\r\n"
    )
    sock.sendall(request.encode("ascii"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise DaemonError(
                f"Docker engine at {docker_host} closed the connection during the /grpc upgrade"
            )
        buf += chunk
        if len(buf) > _HEADER_LIMIT:
            raise DaemonError(f"Docker engine at {docker_host}: oversized /grpc upgrade response")
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    if status_line.split(" ")[1:2] != ["101"]:
        # Error replies carry a small JSON body ({"message": ...}) worth showing.
        raise DaemonError(
            f"Docker engine at {docker_host} refused the BuildKit /grpc upgrade: {status_line} "
            f"{rest[:300].decode('utf-8', 'replace').strip()}"
        )
    return rest


class DockerBridge:
    """Local unix socket whose every connection is an upgraded dockerd ``/grpc`` stream."""

    def __init__(self, docker_host: str, *, dial_timeout: float = 5.0) -> None:
        self.docker_host = docker_host
        self._endpoint = _docker_endpoint(docker_host)
        self._dial_timeout = dial_timeout
        self.last_error: str | None = None
        # mkdtemp's dir is private (0700): the socket grants BuildKit, i.e. root-
        # equivalent, access. Fall back to /tmp when TMPDIR is too deep for the
        # 108-byte sun_path limit.
        self._dir = tempfile.mkdtemp(prefix="layerkit-bk-")
        if len(self._dir) > 80:
            os.rmdir(self._dir)
            self._dir = tempfile.mkdtemp(prefix="layerkit-bk-", dir="/tmp")
        self.path = os.path.join(self._dir, "grpc.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        # An upgraded connection made by check() and handed to the first client, so
        # the probe is not a wasted dockerd connection (dockerd logs those as errors).
        self._spare: tuple[float, socket.socket, bytes] | None = None
        self._thread = threading.Thread(target=self._accept_loop, name="layerkit-docker-bridge", daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"unix://{self.path}"

    def open_upstream(self) -> tuple[socket.socket, bytes]:
        """Dial dockerd and upgrade; (socket in blocking mode, bytes already read)."""
        upstream = dial(self._endpoint, self._dial_timeout, f"Docker engine at {self.docker_host}")
        try:
            leftover = upgrade_to_h2c(upstream, self.docker_host)
        except (OSError, DaemonError):
            upstream.close()
            raise
        upstream.settimeout(None)
        return upstream, leftover

    def check(self) -> None:
        """Dial and upgrade once now: proves dockerd is reachable and serves /grpc."""
        sock, leftover = self.open_upstream()
        with self._lock:
            if self._spare is None:
                self._spare = (time.monotonic(), sock, leftover)
                return
        sock.close()

    def _take_upstream(self) -> tuple[socket.socket, bytes]:
        with self._lock:
            spare, self._spare = self._spare, None
        # Go's HTTP/2 server drops a connection that sends no preface within 10 s.
        if spare is not None and time.monotonic() - spare[0] < _SPARE_MAX_AGE:
            return spare[1], spare[2]
        if spare is not None:
            spare[1].close()
        return self.open_upstream()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener shut down by close()
            threading.Thread(
                target=self._serve, args=(client,), name="layerkit-bridge-conn", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream, leftover = self._take_upstream()
        except (OSError, DaemonError) as exc:
            # grpc only sees a closed connection; keep the reason for the caller.
            self.last_error = str(exc)
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        try:
            if leftover:
                client.sendall(leftover)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            client.close()
            upstream.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        # shutdown() (not close()) is what wakes a thread blocked in accept()/recv().
        with self._lock:
            socks = [self._listener, *self._open]
            if self._spare is not None:
                self._spare[1].close()
                self._spare = None
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=2)
        shutil.rmtree(self._dir, ignore_errors=True)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy src -> dst until EOF, then half-close dst so the peer sees EOF too."""
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        # One side died: tear both down so the opposite pump unblocks.
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Transport:
    """An open gRPC channel to BuildKit plus whatever keeps it alive (the bridge)."""

    def __init__(self, address: BuildkitAddress, channel: grpc.Channel, bridge: DockerBridge | None) -> None:
        self.address = address
        self.channel = channel
        self.bridge = bridge

    def close(self) -> None:
        self.channel.close()
        if self.bridge is not None:
            self.bridge.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_transport(
    addr: str | None = None, *, timeout: float = 10.0, tls: TLSConfig | None = None
) -> Transport:
    """Connect to BuildKit and wait until the channel is ready.

    Fails fast with DaemonError: the raw socket is probed first, so a missing socket
    or refused port reports its errno at once instead of grpc's silent backoff.
    """
    address = parse_address(addr)
    if tls is not None and address.kind != "tcp":
        if tls.explicit:
            raise SpecError(f"TLS options apply to tcp:// BuildKit addresses only, not {address}")
        tls = None
    bridge: DockerBridge | None = None
    if address.kind == "docker":
        bridge = DockerBridge(address.target, dial_timeout=min(timeout, 5.0))
        try:
            bridge.check()
        except DaemonError as exc:
            bridge.close()
            if str(exc).startswith("cannot reach"):  # the dial failed: nothing listens there
                raise DaemonError(f"{exc}; {ENGINE_HINT}") from None
            raise
        target = bridge.target
    elif address.kind == "unix":
        dial(address.target, min(timeout, 5.0), f"BuildKit at {address}").close()
        target = f"unix://{address.target}"
    else:
        host, _, port = address.target.rpartition(":")
        what = f"BuildKit at {address}"
        if tls is None:
            dial((host.strip("[]"), int(port)), min(timeout, 5.0), what).close()
        else:
            sock = dial((host.strip("[]"), int(port)), min(timeout, 5.0), what)
            tls.probe(sock, host.strip("[]"), what, timeout)
        target = address.target
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.max_receive_message_length", MAX_RECV_BYTES),
    ]
    if tls is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        channel = grpc.secure_channel(target, tls.channel_credentials(), options=options)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        detail = f" ({bridge.last_error})" if bridge and bridge.last_error else ""
        if bridge:
            bridge.close()
        raise DaemonError(f"BuildKit at {address} did not become ready within {timeout:g}s{detail}") from None
    return Transport(address, channel, bridge)
