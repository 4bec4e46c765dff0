"""Tiny local conda channels for solver tests, built in milliseconds.

Packages are hand-made ``.tar.bz2`` archives holding only ``info/`` metadata: that is all
a solver or indexer reads, it gives full control over ``track_features`` (which
``rattler_build.assemble_package`` cannot set) and, with fixed mtimes, byte-identical
archives, so hashes are stable across runs.  ``rattler.index.index_fs`` writes the
``repodata.json`` files exactly as for a real channel.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rattler.index import index_fs

FIXED_TIMESTAMP_MS = 1_700_000_000_000  # packages "built" at one instant: deterministic repodata


@dataclass(frozen=True)
class PkgDef:
    """One package build; depends may name virtual packages such as ``__cuda >=11.8``."""

    name: str
    version: str
    build: str = "h0_0"
    build_number: int = 0
    depends: Sequence[str] = ()
    constrains: Sequence[str] = ()
    subdir: str = "linux-64"
    track_features: Sequence[str] = ()
    files: dict[str, str] = field(default_factory=dict)  # relative path -> text content

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"

    def index_json(self) -> dict[str, object]:
        idx: dict[str, object] = {
            "name": self.name, "version": self.version, "build": self.build,
            "build_number": self.build_number, "depends": list(self.depends),
            "constrains": list(self.constrains), "subdir": self.subdir,
            "timestamp": FIXED_TIMESTAMP_MS, "license": "MIT",
        }  # fmt: skip
        if self.subdir == "noarch":
            idx["noarch"] = "generic"
        else:
            os_name, _, arch = self.subdir.partition("-")
            idx["platform"] = os_name
            idx["arch"] = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}.get(arch, arch)
        if self.track_features:
            idx["track_features"] = " ".join(self.track_features)
        return idx


def _add(tf: tarfile.TarFile, path: str, data: bytes) -> None:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mtime = 0  # reproducible archive bytes -> reproducible md5/sha256 in the lock
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def write_package(channel: Path, pkg: PkgDef) -> Path:
    """Write one ``.tar.bz2`` package into ``channel/<subdir>``."""
    target = channel / pkg.subdir / pkg.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    paths = [
        {"_path": p, "path_type": "hardlink", "sha256": "", "size_in_bytes": len(c)}
        for p, c in pkg.files.items()
    ]
    with tarfile.open(target, "w:bz2", compresslevel=1) as tf:
        _add(tf, "info/index.json", json.dumps(pkg.index_json(), indent=2, sort_keys=True).encode())
        _add(tf, "info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode())
        _add(tf, "info/files", "".join(f"{p}\n" for p in pkg.files).encode())
        for rel, text in sorted(pkg.files.items()):
            _add(tf, rel, text.encode())
    return target


def make_channel(root: Path, packages: Sequence[PkgDef]) -> Path:
    """Create (or replace) a conda channel at ``root`` holding ``packages``; return ``root``."""
    if root.exists():
        shutil.rmtree(root)
    (root / "noarch").mkdir(parents=True)  # conda clients require noarch, even when empty
    for pkg in packages:
        write_package(root, pkg)
    # repodata.json only: what conda-lock/rattler need, and the .zst/shards would double the time
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    shutil.rmtree(root / ".tmp", ignore_errors=True)  # index_fs scratch space, not channel content
    return root


def default_packages() -> list[PkgDef]:
    """The standard test channel: versions, constraints, a fake python, cpu/cuda variants.

    Expected solutions (linux-64):
      ``mlkit``             -> mlkit 1.0 cpu_0, datakit 1.1, corelib 2.1 (no __cuda)
      ``mlkit`` + __cuda    -> mlkit 1.0 cuda_0 (cpu_0 is de-prioritised by track_features)
      ``datakit 1.0``       -> corelib 1.5 (datakit 1.0 needs corelib <2)
      ``toolz`` + python 3.10 -> toolz 0.11 (0.12 needs python >=3.11)
      ``broken``            -> unsolvable (needs a package that does not exist)
    """
    py = "python >=3.10,<3.12"
    return [
        PkgDef("python", "3.10.14", "h0_0", files={"bin/python3.10": "fake interpreter"}),
        PkgDef("python", "3.11.9", "h0_0", files={"bin/python3.11": "fake interpreter"}),
        PkgDef("corelib", "1.5", "h0_0"),
        PkgDef("corelib", "2.1", "h0_0"),
        PkgDef("datakit", "1.0", "h0_0", depends=["corelib >=1,<2"]),
        PkgDef("datakit", "1.1", "h0_0", depends=["corelib >=2"]),
        PkgDef("toolz", "0.11", "pyh_0", depends=[py], subdir="noarch"),
        PkgDef("toolz", "0.12", "pyh_0", depends=["python >=3.11,<3.12"], subdir="noarch"),
        PkgDef("mlkit", "1.0", "cpu_0", depends=["datakit >=1"], track_features=["mlkit-cpu"]),
        PkgDef("mlkit", "1.0", "cuda_0", depends=["datakit >=1", "__cuda >=11.8"]),
        PkgDef(
            "pip", "24.0", "pyh_0", depends=["python >=3.8"], subdir="noarch"
        ),  # conda-lock adds "pip *" for pip deps
        PkgDef("broken", "1.0", "h0_0", depends=["does-not-exist >=1"]),
    ]


@dataclass(frozen=True)
class WheelDef:
    """A pure-Python wheel with nothing but metadata and an empty module."""

    name: str
    version: str
    requires: Sequence[str] = ()

    @property
    def filename(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"

    def build(self, target: Path) -> Path:
        mod, dist_info = (
            self.name.replace("-", "_"),
            f"{self.name.replace('-', '_')}-{self.version}.dist-info",
        )
        metadata = f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n"
        metadata += "".join(f"Requires-Dist: {r}\n" for r in self.requires)
        wheel = "Wheel-Version: 1.0\nGenerator: layerkit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        files = {f"{mod}/__init__.py": b"", f"{dist_info}/METADATA": metadata.encode()}
        files[f"{dist_info}/WHEEL"] = wheel.encode()
        record = [f"{p},sha256={_b64_sha256(data)},{len(data)}" for p, data in files.items()]
        files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
        path = target / self.filename
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
        return path


def _b64_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_pypi_index(root: Path, wheels: Sequence[WheelDef]) -> Path:
    """A PEP 503 "simple" index at ``root/simple`` (wheels in ``root/files``); return ``root``.

    conda-lock's pip step (vendored poetry, via requests) cannot read ``file://`` indexes,
    so serve ``root`` with ``serve_directory`` and use ``<url>/simple`` as pip repository.
    """
    (root / "files").mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[str]] = {}
    for wheel in wheels:
        path = wheel.build(root / "files")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        link = f'<a href="../../files/{path.name}#sha256={digest}">{path.name}</a>'
        projects.setdefault(wheel.name.lower().replace("_", "-"), []).append(link)
    for project, links in projects.items():
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<!DOCTYPE html><html><body>\n" + "<br>\n".join(links) + "\n</body></html>\n")
    top = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
    (root / "simple" / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{top}</body></html>\n")
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] | None = None
    token: str | None = None  # serve only under /t/<token>/, as anaconda.org and Quetz do
    # Called with each GET path before it is served; may block (test_faults holds a download
    # there to catch a build mid-step).
    on_get: Callable[[str], None] | None = None

    def log_message(self, format: str, *args: object) -> None:  # "format": the stdlib signature
        pass  # one line per request would drown test output

    def _allowed(self) -> bool:
        if self.token is None:
            return True
        prefix = f"/t/{self.token}/"
        if not self.path.startswith(prefix):
            self.send_error(403, "token required")
            return False
        self.path = "/" + self.path[len(prefix) :]
        return True

    def do_GET(self) -> None:
        if self.requests is not None:
            self.requests.append(self.path)
        if self.on_get is not None:
            self.on_get(self.path)
        if self._allowed():
            self._unconditional()
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._allowed():
            self._unconditional()
            super().do_HEAD()

    def _unconditional(self) -> None:
        # Always the content: a port is served again later (another module, another engineer's
        # run) with other files, and a 304 against a solver's cached Last-Modified (1 s steps)
        # would hand it the earlier server's repodata.
        del self.headers["If-Modified-Since"]
        del self.headers["If-None-Match"]


class _Server(http.server.ThreadingHTTPServer):
    # A solver opens many connections at once; on a loaded machine the accept loop lags, and
    # past the default backlog of 5 each extra connection waits out a SYN retransmit.
    request_queue_size = 128


def serve_directory(
    root: Path,
    requests: list[str] | None = None,
    *,
    token: str | None = None,
    on_get: Callable[[str], None] | None = None,
) -> tuple[str, Callable[[], None]]:
    """Serve ``root`` over HTTP on 127.0.0.1 (ephemeral port); return (base url, stop).
    GET paths are appended to ``requests`` when given (what a build downloaded). With
    ``token``, only ``/t/<token>/...`` is served (403 elsewhere): a tokenized channel.
    ``on_get(path)`` runs before each GET is served."""
    attrs = {"requests": requests, "token": token, "on_get": staticmethod(on_get) if on_get else None}
    handler = functools.partial(type("_Handler", (_QuietHandler,), attrs), directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"serve:{root}", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return f"http://127.0.0.1:{server.server_address[1]}", stop


def serve_channel(root: Path) -> tuple[str, Callable[[], None]]:
    """Serve a channel made by ``make_channel``; the URL is usable as ``-c URL``."""
    return serve_directory(root)
