"""A BuildKit client session: the services BuildKit calls back into during a solve.

``Control.Session`` is a bidi stream of BytesMessage carrying a raw HTTP/2 connection on
which the *client* is the gRPC server. grpcio cannot serve over a stream, so a private
grpc.server listens on a unix socket and two threads pump bytes between it and the
stream. Served: health (BuildKit drops sessions that fail it), FileSync (local dirs for
contexts too large for inline LLB, .dockerignore honoured), Auth (registry
credentials from a callback; secrets go nowhere else, and are never logged) and Secrets
(`RUN --mount=type=secret,id=X`: the value of X, asked for by that RUN only).
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from layerkit.build._proto import buildkit_control_pb2 as control
from layerkit.build._proto import buildkit_session_auth_pb2 as auth_pb
from layerkit.build._proto import buildkit_session_auth_pb2_grpc as auth_grpc
from layerkit.build._proto import buildkit_session_filesync_pb2_grpc as fs_grpc
from layerkit.build._proto import buildkit_session_health_pb2 as health_pb
from layerkit.build._proto import buildkit_session_health_pb2_grpc as health_grpc
from layerkit.build._proto import buildkit_session_secrets_pb2 as secrets_pb
from layerkit.build._proto import buildkit_session_secrets_pb2_grpc as secrets_grpc
from layerkit.build._proto import fsutil_types_pb2 as ft
from layerkit.build.filesync import diff_copy
from layerkit.spec.imageref import DOCKER_HUB, is_docker_hub

if TYPE_CHECKING:
    from layerkit.build.client import BuildkitClient

CredentialsFn = Callable[[str], "tuple[str, str] | None"]
_METHODS = (
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
)
_CHUNK = 1 << 20


def _meta(context: grpc.ServicerContext, key: str) -> list[str]:
    return [str(v) for k, v in context.invocation_metadata() if k == key]


class _Health(health_grpc.HealthServicer):
    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        return health_pb.HealthCheckResponse(status=health_pb.HealthCheckResponse.SERVING)


class _FileSync(fs_grpc.FileSyncServicer):
    def __init__(self, dirs: Mapping[str, Path]) -> None:
        self.dirs = dict(dirs)

    def DiffCopy(
        self, request_iterator: Iterator[ft.Packet], context: grpc.ServicerContext
    ) -> Iterator[ft.Packet]:
        names = _meta(context, "dir-name")
        root = self.dirs.get(names[0]) if names else None
        if root is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no local dir {names[:1]} in this session")
        includes = _meta(context, "include-patterns") + _meta(context, "followpaths")
        excludes = _meta(context, "exclude-patterns")
        yield from diff_copy(root, request_iterator, includes, excludes)  # type: ignore[arg-type]


class _Auth(auth_grpc.AuthServicer):
    def __init__(self, credentials: CredentialsFn | None) -> None:
        self.credentials = credentials

    def Credentials(self, request: Any, context: grpc.ServicerContext) -> Any:
        host = request.Host
        if is_docker_hub(host):
            host = DOCKER_HUB
        found = self.credentials(host) if self.credentials else None
        if not found:
            return auth_pb.CredentialsResponse()
        return auth_pb.CredentialsResponse(Username=found[0], Secret=found[1])

    # FetchToken & co. stay UNIMPLEMENTED (the base class): BuildKit then asks Credentials.


class _Secrets(secrets_grpc.SecretsServicer):
    def __init__(self, secrets: Mapping[str, bytes]) -> None:
        self.secrets = dict(secrets)

    def GetSecret(self, request: Any, context: grpc.ServicerContext) -> Any:
        data = self.secrets.get(request.ID)
        if data is None:  # BuildKit reads NOT_FOUND as "no such secret", not as a failure
            context.abort(grpc.StatusCode.NOT_FOUND, f"secret {request.ID} not found")
        return secrets_pb.GetSecretResponse(data=data)


class Session:
    def __init__(
        self,
        client: BuildkitClient,
        *,
        local_dirs: Mapping[str, Path] | None = None,
        credentials: CredentialsFn | None = None,
        secrets: Mapping[str, bytes] | None = None,
        name: str = "layerkit",
    ) -> None:
        self.id = uuid.uuid4().hex
        self._client = client
        self._dirs = {k: Path(v) for k, v in (local_dirs or {}).items()}
        self._credentials = credentials
        self._secrets = dict(secrets or {})
        self._name = name
        self._tmp = Path(tempfile.mkdtemp(prefix="lk-sess-"))
        self._server: grpc.Server | None = None
        self._sock: socket.socket | None = None
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._call: Any = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Session:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        path = self._tmp / "s.sock"
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="lk-session"))
        # Generated registration helpers carry no annotations.
        health_grpc.add_HealthServicer_to_server(_Health(), server)  # type: ignore[no-untyped-call]
        fs_grpc.add_FileSyncServicer_to_server(_FileSync(self._dirs), server)  # type: ignore[no-untyped-call]
        auth_grpc.add_AuthServicer_to_server(_Auth(self._credentials), server)  # type: ignore[no-untyped-call]
        secrets_grpc.add_SecretsServicer_to_server(_Secrets(self._secrets), server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix:{path}")
        server.start()
        self._server = server
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        self._sock = sock
        metadata = [
            ("x-docker-expose-session-uuid", self.id),
            ("x-docker-expose-session-name", self._name),
            ("x-docker-expose-session-sharedkey", ""),
            *(("x-docker-expose-session-grpc-method", m) for m in _METHODS),
        ]
        stub = self._client._stub
        self._call = stub.Session(self._requests(), metadata=metadata)
        self._spawn(self._upstream, "lk-session-up")
        self._spawn(self._downstream, "lk-session-down")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _requests(self) -> Iterator[control.BytesMessage]:
        while (data := self._outbox.get()) is not None:
            yield control.BytesMessage(data=data)

    def _upstream(self) -> None:
        """Our gRPC server's bytes -> the Session stream."""
        assert self._sock is not None
        try:
            while data := self._sock.recv(_CHUNK):
                self._outbox.put(data)
        except OSError:
            pass
        finally:
            self._outbox.put(None)

    def _downstream(self) -> None:
        """BuildKit's bytes from the Session stream -> our gRPC server."""
        assert self._sock is not None
        try:
            for msg in self._call:
                self._sock.sendall(msg.data)
        except (grpc.RpcError, OSError):
            pass
        finally:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_WR)

    def __exit__(self, *exc: object) -> None:
        self._outbox.put(None)
        if self._call is not None:
            self._call.cancel()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
        for t in self._threads:
            t.join(timeout=5)
        shutil.rmtree(self._tmp, ignore_errors=True)
