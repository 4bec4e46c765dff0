"""Tools for fault tests (test_faults.py): catch a real build at a chosen moment, by events.

- ``Hold``: blocks the first request that matches until released, so the build is known to
  be waiting there (mid-step, mid-push) while the test kills a service or interrupts it;
- ``TapProxy``: a TCP proxy in front of the registry that hands each client->registry chunk
  to a ``Hold`` (it matches HTTP request lines, e.g. the first blob upload to a repository);
- ``LayerkitBuild``: ``layerkit build --progress json`` as a subprocess, its stderr events
  read as they come;
- ``image_state``: whether a registry holds a manifest, and if so whether every manifest and
  blob it references is there in full (what skip-by-hash must never see half of).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fixtures_services import SERVICES, Services, run_script

from layerkit.build.registry import MANIFEST_TYPES as MANIFESTS

WAIT = 600.0  # seconds: only a guard against a hang, never a timing assumption

ACCEPT = ", ".join(MANIFESTS)


class Hold:
    """Holds the first ``what`` that ``match`` accepts, in the server thread that saw it, until
    ``release()``. ``hit`` is set once that request waits; ``dropped`` if its client gave it up
    (closed the connection) while it waited: what a cancelled BuildKit job does to its push."""

    def __init__(self) -> None:
        self._match: Callable[[str], bool] | None = None
        self._lock = threading.Lock()
        self.hit = threading.Event()
        self.dropped = threading.Event()
        self._go = threading.Event()
        self._wake = socket.socketpair()  # readable on release(): wakes a select() on a held socket
        self.seen = ""

    def arm(self, match: Callable[[str], bool]) -> None:
        with self._lock:
            self._match, self.seen = match, ""
            self.hit.clear()
            self.dropped.clear()
            self._go.clear()
            self._wake = socket.socketpair()

    def release(self) -> None:
        with self._lock:
            self._match = None
            self._go.set()
            self._wake[1].send(b"x")

    def __call__(self, what: str, conn: socket.socket | None = None) -> None:
        with self._lock:
            if self._match is None or self.hit.is_set() or not self._match(what):
                return
            self.seen = what
            self.hit.set()
            wake = self._wake[0]
        if conn is None:
            self._go.wait(WAIT)
            return
        ready, _, _ = select.select([conn, wake], [], [], WAIT)
        if conn in ready and not self._go.is_set():
            try:
                closed = conn.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                closed = True
            if closed:
                self.dropped.set()
                return
            self._go.wait(WAIT)  # more bytes of a pipelined request: still held

    def wait_hit(self, build: LayerkitBuild) -> str:
        """Block until the held request arrived; fail if the build ended first."""
        while not self.hit.wait(1.0):
            if build.proc.poll() is not None:
                raise AssertionError(
                    f"build ended ({build.proc.returncode}) before the hold:\n{build.stderr[-3000:]}"
                )
        return self.seen


class TapProxy:
    """127.0.0.1:<port> -> 127.0.0.1:<upstream>: bytes pass unchanged, but each HTTP request
    line a client sends (``POST /v2/.../blobs/uploads/ HTTP/1.1``) goes to ``hold`` first.
    ``refuse()`` while the registry is down, ``listen()`` once it is back: clients then find
    the proxy's port as they would the registry's."""

    def __init__(self, upstream: int, hold: Hold) -> None:
        self.upstream, self.hold = upstream, hold
        # Bound and never listening, this socket keeps the port the proxy's while it refuses
        # (as fixtures_services.refused_port); SO_REUSEPORT lets each listener share it.
        self._port = _reuseport_socket(0)
        self.port = int(self._port.getsockname()[1])
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.listen()

    def listen(self) -> None:
        self._listener = _reuseport_socket(self.port)
        self._listener.listen()
        threading.Thread(target=self._accept, args=(self._listener,), name="tap-proxy", daemon=True).start()

    def refuse(self) -> None:
        """Refuse new connections, as a killed registry's port does, rather than accept and
        drop them: BuildKit's pusher takes a dropped connection (EOF) for a passing fault and
        tries again for 7 s, a refused one fails at once."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # ends a blocked accept(); close() would not
        self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()  # the registry is down: the client sees a dropped connection
            return
        with self._lock:
            self._socks |= {client, up}
        threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()
        self._pump(client, up, True)

    def _pump(self, src: socket.socket, dst: socket.socket, tap: bool) -> None:
        partial = b""  # a request line cut by a read boundary is matched once it is whole
        try:
            while data := src.recv(1 << 16):
                if tap:
                    *lines, partial = (partial + data).split(b"\r\n")
                    partial = partial[-1024:]
                    for line in lines:
                        if line.endswith(b" HTTP/1.1"):
                            self.hold(line.decode("latin-1"), src)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.refuse()
        self._port.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def _reuseport_socket(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    return s


def upload_to(repo: str) -> Callable[[str], bool]:
    """Matches the start of a blob upload into exactly ``repo`` (not ``repo-cache``)."""
    return lambda line: line.startswith(f"POST /v2/{repo}/blobs/uploads/")


class LayerkitBuild:
    """``layerkit build --json --progress json`` on ``addr``; stderr lines collected as they come."""

    def __init__(self, spec: Path, addr: str, tmpdir: Path) -> None:
        """``tmpdir``: the run's TMPDIR, so what it leaves there is seen (and is its own)."""
        cmd = [sys.executable, "-m", "layerkit", "build", "--json", "--progress", "json",
               "--network", "host", "--addr", addr, str(spec)]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(tmpdir)}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._out: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True),
            threading.Thread(target=lambda: self._out.append(self.proc.stdout.read()), daemon=True),  # type: ignore[union-attr]
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def events(self) -> list[dict[str, object]]:
        out = []
        with self._cond:
            lines = list(self.lines)
        for line in lines:
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                if isinstance(ev, dict):
                    out.append(ev)
        return out

    def wait_event(self, match: Callable[[dict[str, object]], bool]) -> dict[str, object]:
        """The first progress event ``match`` accepts; fails if the build ends without one."""
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    with contextlib.suppress(ValueError):
                        ev = json.loads(line)
                        if isinstance(ev, dict) and match(ev):
                            return ev
                seen = len(self.lines)
                if self._eof:
                    raise AssertionError(
                        f"no such event; the build ended:\n{chr(10).join(self.lines)[-3000:]}"
                    )
                self._cond.wait(WAIT)

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) once the process ended (a hang fails the test)."""
        self.proc.wait(WAIT)
        for reader in self._readers:
            reader.join(WAIT)
        return self.proc.returncode, "".join(self._out), self.stderr


def run_build(spec: Path, addr: str, tmpdir: Path) -> dict[str, object]:
    """A build that must succeed; its --json result."""
    code, out, err = LayerkitBuild(spec, addr, tmpdir).finish()
    assert code == 0, err[-3000:]
    doc: dict[str, object] = json.loads(out)
    return doc


# -- services: kill by pidfile, start again in place -------------------------------------------
@dataclass(frozen=True)
class ServiceDirs:
    dockerd: Path  # dockerd.sh DIR
    registry: Path  # registry.sh DIR
    registry_port: int

    @classmethod
    def of(cls, svc: Services) -> ServiceDirs:
        return cls(svc.root / "d", svc.root / "r", int(svc.registry.rsplit(":", 1)[1]))

    def kill_dockerd(self) -> int:
        """SIGKILL dockerd; return once it and its managed containerd (which dies with it, by
        a parent-death signal) have exited. That containerd's pidfile is then stale and goes:
        where init reaps no orphans (this test VM's does not) the dead containerd stays a
        zombie, which a restarted dockerd takes for a live one and waits ~10 s for."""
        containerd = self.dockerd / "exec" / "containerd" / "containerd.pid"
        fd = os.pidfd_open(int(containerd.read_text().strip()))  # opened first: no pid reuse
        try:
            pid = _kill(self.dockerd / "docker.pid")
            assert select.select([fd], [], [], WAIT)[0], "dockerd's containerd outlived it"
        finally:
            os.close(fd)
        containerd.unlink()
        return pid

    def kill_registry(self) -> int:
        return _kill(self.registry / "registry.pid")

    def start_dockerd(self) -> None:
        run_script(SERVICES / "dockerd.sh", "start", self.dockerd, timeout=600, env={"DOCKERD_ENGINE": "26"})

    def start_registry(self) -> None:
        """Again on its old port: the base image and the spec name it. Between the kill and now
        another process may have taken the port for a while (the ephemeral end of one of its
        connections), so a start that found it in use is tried again once the port is free;
        WAIT only bounds a port taken for good."""
        deadline = time.monotonic() + WAIT
        cmd = [str(SERVICES / "registry.sh"), "start", str(self.registry_port), str(self.registry)]
        while True:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT, check=False)
            if proc.returncode == 0:
                return
            why = proc.stderr[-3000:]
            assert "address already in use" in why and time.monotonic() < deadline, why
            _wait_port_free(self.registry_port, deadline)


def _wait_port_free(port: int, deadline: float) -> None:
    """Until a listener could bind 127.0.0.1:port (as the registry does: SO_REUSEADDR)."""
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return
            except OSError:
                assert time.monotonic() < deadline, f"127.0.0.1:{port} stayed in use"
        time.sleep(0.05)


def _kill(pidfile: Path) -> int:
    """SIGKILL the process a service's pidfile names; return once it has died."""
    pid = int(pidfile.read_text().strip())
    fd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        # A pidfd turns readable when its process has exited (its sockets are closed by then).
        assert select.select([fd], [], [], WAIT)[0], f"pid {pid} survived SIGKILL"
    finally:
        os.close(fd)
    return pid


# -- what a registry holds -----------------------------------------------------------------------
def _request(url: str, method: str = "GET", accept: str = ACCEPT) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, method=method, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(resp.status), resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", {}


def image_state(registry: str, ref: str) -> str:
    """'absent', or 'complete' when the manifest and every manifest/blob below it are there in
    full; anything else raises (a partial image a later skip-by-hash could trust)."""
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    code, body, _ = _request(f"http://{registry}/v2/{repo}/manifests/{tag}")
    if code == 404:
        return "absent"
    assert code == 200, (ref, code)
    for problem in _missing(registry, repo, json.loads(body)):
        raise AssertionError(f"{ref}: its manifest exists but {problem}")
    return "complete"


def _missing(registry: str, repo: str, doc: dict[str, object]) -> Iterator[str]:
    # BuildKit's registry cache is an index whose entries are its layer blobs and its cache
    # config, not manifests; an image index lists manifests.
    entries = doc.get("manifests")
    blobs = list(entries) if isinstance(entries, list) else [doc["config"], *doc.get("layers", [])]  # type: ignore[list-item]
    for blob in blobs:
        if blob.get("mediaType") in MANIFESTS:
            code, body, _ = _request(f"http://{registry}/v2/{repo}/manifests/{blob['digest']}")
            if code != 200:
                yield f"manifest {blob['digest']} is missing ({code})"
            else:
                yield from _missing(registry, repo, json.loads(body))
            continue
        code, _, headers = _request(f"http://{registry}/v2/{repo}/blobs/{blob['digest']}", "HEAD")
        if code != 200:
            yield f"blob {blob['digest']} is missing ({code})"
        elif int(headers.get("Content-Length", -1)) != int(blob["size"]):
            yield f"blob {blob['digest']} has {headers.get('Content-Length')} of {blob['size']} bytes"
