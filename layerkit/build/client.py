"""Typed BuildKit Control client: workers, version info, capabilities, solve + progress.

Works against standalone buildkitd and dockerd's embedded BuildKit (0.8 in Docker
20.10). Requests only use fields old daemons know; newer fields are ignored by
them, so capability checks decide which exporter and cache backends to ask for.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import grpc

from layerkit.build._proto import buildkit_control_pb2 as control
from layerkit.build._proto import buildkit_control_pb2_grpc as control_grpc
from layerkit.build._proto import buildkit_ops_pb2 as pb
from layerkit.build.tls import TLSConfig
from layerkit.build.transport import NO_BRIDGE, BuildkitAddress, Transport, open_transport
from layerkit.errors import DaemonError

# How long a failed job's last statuses may take to arrive. BuildKit ends the Status stream
# itself when it drops the job; this bounds only a daemon that never does.
STATUS_DRAIN_LIMIT = 60.0
LABEL_EXECUTOR = "org.mobyproject.buildkit.worker.executor"
LABEL_SNAPSHOTTER = "org.mobyproject.buildkit.worker.snapshotter"
_MOBY_LABEL_PREFIX = "org.mobyproject.buildkit.worker.moby."
_CONTAINERD_NAMESPACE = "org.mobyproject.buildkit.worker.containerd.namespace"


class SolveFailed(DaemonError):
    """BuildKit ran the build and it failed (a step errored, an image was missing...)."""

    def __init__(self, message: str, vertex: str = "", logs: str = "") -> None:
        super().__init__(message)
        self.vertex = vertex
        self.logs = logs


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    platforms: tuple[str, ...]  # "linux/amd64", "linux/arm/v7", ...
    labels: Mapping[str, str]

    @property
    def executor(self) -> str | None:
        return self.labels.get(LABEL_EXECUTOR)

    @property
    def snapshotter(self) -> str | None:
        return self.labels.get(LABEL_SNAPSHOTTER)


@dataclass(frozen=True)
class DaemonInfo:
    package: str
    version: str
    revision: str


@dataclass(frozen=True)
class Capabilities:
    """What this daemon can export to; decides layerkit's build strategy."""

    embedded_in_docker: bool
    exporters: frozenset[str]
    cache_exports: frozenset[str]
    cache_imports: frozenset[str]
    version: str | None  # None when the daemon predates the Info RPC (< 0.11)
    # Its built-in Dockerfile frontend takes `COPY --link` (Docker 20.10's refuses the flag).
    copy_link: bool

    @property
    def pushes_images(self) -> bool:
        """The image exporter pushes and the cache goes to a registry (mode=max): buildkitd,
        and dockerd whose builder is BuildKit's containerd worker (the containerd image store)."""
        return "image" in self.exporters and "registry" in self.cache_exports

    @property
    def default_exporter(self) -> str:
        # "moby" writes straight into dockerd's image store; buildkitd has no store
        # of its own and pushes/loads through "image".
        return "moby" if self.embedded_in_docker else "image"


# dockerd's classic (graphdriver) image store: only the moby exporter plus the
# client-side ones; cache can be imported from registries but exported inline only.
_EMBEDDED = (frozenset({"moby", "local", "tar"}), frozenset({"inline"}), frozenset({"registry"}))
# dockerd with the containerd image store (the containerd-snapshotter feature): its
# builder is BuildKit's containerd worker, which has the image exporter and the registry cache.
_EMBEDDED_CONTAINERD = (
    frozenset({"moby", "image", "local", "tar"}),
    frozenset({"inline", "registry", "local"}),
    frozenset({"registry", "local"}),
)
_STANDALONE = (
    frozenset({"image", "oci", "docker", "local", "tar"}),
    frozenset({"inline", "registry", "local"}),
    frozenset({"registry", "local"}),
)


@dataclass(frozen=True)
class VertexState:
    digest: str
    name: str
    cached: bool
    started: bool
    completed: bool
    error: str


@dataclass
class SolveResult:
    """Outcome of one solve. ``vertexes``: digest -> last reported state, in first-seen
    order; ``logs``: digest -> the step's stdout and stderr, interleaved."""

    ref: str
    exporter_response: dict[str, str]
    vertexes: dict[str, VertexState] = field(default_factory=dict)
    logs: dict[str, bytearray] = field(default_factory=dict)


StatusCallback = Callable[[control.StatusResponse], None]
_LINK_PROBE = "FROM scratch\nCOPY --link probe /probe\n"
_NO_LINK = "unknown flag: link"  # BuildKit 0.8's parser: "dockerfile parse error line 2: Unknown flag: link"


def capabilities_of(
    workers: list[WorkerInfo], info: DaemonInfo | None, *, via_docker: bool, copy_link: bool | None = None
) -> Capabilities:
    """What the daemon's own answers (ListWorkers, Info, a probe solve) say it can do; no
    version guesses. ``copy_link``: the probe's answer, asked only of a daemon without Info:
    one that answers Info (BuildKit 0.11+) has a frontend that takes `COPY --link` (0.10+)."""
    # Through /grpc we can only ever reach dockerd's own builder; dockerd's worker
    # is also recognisable directly (id "moby", or worker.moby.* labels in 23+).
    embedded = via_docker or any(
        w.id == "moby" or any(k.startswith(_MOBY_LABEL_PREFIX) for k in w.labels) for w in workers
    )
    if not embedded:
        exporters, cache_out, cache_in = _STANDALONE
    elif workers and all(_containerd_worker(w) for w in workers):
        exporters, cache_out, cache_in = _EMBEDDED_CONTAINERD
    else:
        exporters, cache_out, cache_in = _EMBEDDED
    link = info is not None or bool(copy_link)
    return Capabilities(embedded, exporters, cache_out, cache_in, info.version if info else None, link)


def _containerd_worker(w: WorkerInfo) -> bool:
    """BuildKit's containerd worker (dockerd 20.10's own worker is "moby", executor oci)."""
    return w.id != "moby" and w.executor == "containerd" and _CONTAINERD_NAMESPACE in w.labels


def _platform_str(p: pb.Platform) -> str:
    return "/".join(x for x in (p.OS, p.Architecture, p.Variant) if x)


class BuildkitClient:
    """``BuildkitClient(addr)``: see transport.parse_address for address forms."""

    def __init__(
        self, addr: str | None = None, *, timeout: float = 10.0, tls: TLSConfig | None = None
    ) -> None:
        self.transport: Transport = open_transport(addr, timeout=timeout, tls=tls)
        # Generated grpc stubs carry no annotations: every method is Any.
        self._stub = control_grpc.ControlStub(self.transport.channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> BuildkitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call_error(self, what: str, exc: grpc.RpcError) -> DaemonError:
        return DaemonError(
            f"BuildKit {what} via {self.transport.address} failed: {exc.code().name}: {exc.details()}"
        )

    def list_workers(self) -> list[WorkerInfo]:
        try:
            resp = self._stub.ListWorkers(control.ListWorkersRequest(), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise self._call_error("ListWorkers", exc) from None
        return [
            WorkerInfo(
                id=rec.ID,
                platforms=tuple(_platform_str(p) for p in rec.platforms),
                labels=MappingProxyType(dict(rec.Labels)),
            )
            for rec in resp.record
        ]

    def info(self) -> DaemonInfo | None:
        """Daemon version, or None if it has no Info RPC (BuildKit < 0.11, Docker 20.10)."""
        try:
            resp = self._stub.Info(control.InfoRequest(), timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise self._call_error("Info", exc) from None
        v = resp.buildkitVersion
        return DaemonInfo(package=v.package, version=v.version, revision=v.revision)

    def capabilities(self) -> Capabilities:
        workers, info = self.list_workers(), self.info()
        return capabilities_of(
            workers,
            info,
            via_docker=self.transport.address.kind == "docker",
            copy_link=None if info is not None else self.takes_copy_link(),
        )

    def takes_copy_link(self) -> bool:
        """Whether the built-in Dockerfile frontend accepts `COPY --link`: a solve of a
        two-line Dockerfile (FROM scratch, one linked empty file), exported nowhere."""
        from layerkit.build.llb import dockerfile_inputs

        try:
            # No deadline, like every solve: a loaded daemon is slow, not wrong.
            self.solve(
                frontend="dockerfile.v0", frontend_inputs=dockerfile_inputs(_LINK_PROBE, {"probe": b""})
            )
        except SolveFailed as exc:
            if _NO_LINK in str(exc).lower():
                return False
            raise
        return True

    def solve(
        self,
        *,
        definition: pb.Definition | None = None,
        frontend: str = "",
        frontend_attrs: Mapping[str, str] | None = None,
        frontend_inputs: Mapping[str, pb.Definition] | None = None,
        exporter: str = "",
        exporter_attrs: Mapping[str, str] | None = None,
        cache_imports: Iterable[tuple[str, Mapping[str, str]]] = (),
        cache_exports: Iterable[tuple[str, Mapping[str, str]]] = (),
        entitlements: Iterable[str] = (),
        session: str = "",
        on_status: StatusCallback | None = None,
        timeout: float | None = None,
        masked: Mapping[str, bytes] | None = None,
    ) -> SolveResult:
        """Run one build and follow its progress until it ends.

        Solve is a unary RPC that returns only when the build is done, so it runs as
        a future while this thread drains the Status stream for the same Ref. Each value in
        `masked` (the build's secrets) is written as its `${NAME}` in the steps' logs before
        anything reads them: a tool in a RUN may print one (pip shows an index's user name).
        """
        ref = uuid.uuid4().hex
        req = control.SolveRequest(
            Ref=ref,
            Frontend=frontend,
            FrontendAttrs=dict(frontend_attrs or {}),
            # Single-exporter fields: the only ones BuildKit < 0.13 reads; newer
            # daemons convert them into Exporters themselves.
            Exporter=exporter,
            ExporterAttrs=dict(exporter_attrs or {}),
            Entitlements=list(entitlements),
            Session=session,
            Cache=control.CacheOptions(
                Imports=[control.CacheOptionsEntry(Type=t, Attrs=dict(a)) for t, a in cache_imports],
                Exports=[control.CacheOptionsEntry(Type=t, Attrs=dict(a)) for t, a in cache_exports],
            ),
        )
        if definition is not None:
            req.Definition.CopyFrom(definition)
        for name, d in (frontend_inputs or {}).items():
            req.FrontendInputs[name].CopyFrom(d)

        result = SolveResult(ref=ref, exporter_response={})
        solve_future = self._stub.Solve.future(req, timeout=timeout)
        status_call = self._stub.Status(control.StatusRequest(Ref=ref), timeout=timeout)

        seen = threading.Event()  # a status arrived: the job exists
        drained = threading.Event()  # the Status loop below has ended: no drain timer needed
        drains: list[threading.Timer] = []

        def stop_status_on_failure(fut: grpc.Future) -> None:
            if drained.is_set() or (not fut.cancelled() and fut.exception() is None):
                return
            if fut.cancelled() or not seen.is_set():
                # A request rejected before the job exists would leave Status waiting
                # for a job that never appears.
                status_call.cancel()
                return
            # The failed step's error and log may still be on their way (Solve's answer can
            # overtake them); cancelling now would lose them. BuildKit ends the stream itself.
            drain = threading.Timer(STATUS_DRAIN_LIMIT, status_call.cancel)
            drain.daemon = True
            drain.start()
            drains.append(drain)

        solve_future.add_done_callback(stop_status_on_failure)
        try:
            for resp in status_call:
                seen.set()
                _mask_logs(resp, masked)
                _apply_status(result, resp)
                if on_status is not None:
                    on_status(resp)
        except grpc.RpcError:
            pass  # progress is best effort; the Solve outcome below is authoritative
        except BaseException:
            solve_future.cancel()
            status_call.cancel()
            raise
        finally:
            drained.set()
            for drain in drains:
                drain.cancel()
        try:
            resp = solve_future.result()
        except grpc.RpcError as exc:
            raise _solve_error(exc, result, self.transport.address) from None
        except grpc.FutureCancelledError:
            raise DaemonError(f"BuildKit solve {ref} was cancelled") from None
        result.exporter_response = dict(resp.ExporterResponse)
        return result


def _mask_logs(resp: control.StatusResponse, masked: Mapping[str, bytes] | None) -> None:
    if not masked:
        return
    for log in resp.logs:
        for name, value in sorted(masked.items(), key=lambda kv: -len(kv[1])):
            if value and value in log.msg:
                log.msg = log.msg.replace(value, f"${{{name}}}".encode())


def _apply_status(result: SolveResult, resp: control.StatusResponse) -> None:
    for v in resp.vertexes:
        result.vertexes[v.digest] = VertexState(
            digest=v.digest,
            name=v.name,
            cached=v.cached,
            started=v.HasField("started"),
            completed=v.HasField("completed"),
            error=v.error,
        )
    for log in resp.logs:
        result.logs.setdefault(log.vertex, bytearray()).extend(log.msg)


# BuildKit shows a registry cache it cannot import (none exported yet) as an errored step and
# builds on without it: such a step is never why a solve failed.
_NOT_FATAL = ("importing cache manifest from ",)
_EXPORTS = ("exporting ",)  # "exporting to image", "exporting cache to registry": the pushes


def _solve_error(exc: grpc.RpcError, result: SolveResult, address: BuildkitAddress) -> SolveFailed:
    why = f"{exc.code().name}: {' '.join(str(exc.details()).split())}"
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        # The connection itself went away mid-solve: the daemon died or restarted.
        return SolveFailed(
            f"lost BuildKit at {address} during the build ({why}); "
            "is the daemon running? Start it and build again"
        )
    failed = next(
        (v for v in result.vertexes.values() if v.error and not v.name.startswith(_NOT_FATAL)), None
    )
    if failed is None:
        return SolveFailed(f"BuildKit solve failed: {why}")
    tail = bytes(result.logs.get(failed.digest, b""))[-4000:].decode("utf-8", "replace")
    why = " ".join(failed.error.split())  # the last line of stderr is the whole error
    if NO_BRIDGE in why:  # an engine without a bridge (dockerd --bridge=none) and the default network
        why += (
            "; this engine has no bridge network: build with --network host (steps use the host's "
            "network) or --network none (steps that need none)"
        )
    if failed.name.startswith(_EXPORTS):
        why += "; no half-pushed image or cache is used later: building again pushes it"
    return SolveFailed(f"BuildKit step {failed.name!r} failed: {why}", vertex=failed.name, logs=tail)
