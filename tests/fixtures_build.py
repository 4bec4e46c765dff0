"""An air-gapped build site for integration tests, the demo and the benchmark.

- a conda channel of packages that really run: ``corelib`` ships a shared library and
  ``mlkit`` a program linked against it (compiled here with gcc, RPATH $ORIGIN/../lib,
  as conda packages do); ``python`` is a thin wrapper around the base image's python3
  (no conda channel is reachable to fetch a real one);
- a PyPI mirror holding the py-rattler (and pypa installer) wheels that layerkit's env stage installs
  (downloaded once from PyPI into ~/.cache/layerkit/wheelhouse);
- both served over HTTP on 127.0.0.1 (builds reach them with ``--network host``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import fixtures_channels as fx

from layerkit.render.envinstall import INSTALLER_LIB, RATTLER_VERSION
from layerkit.resources import cache_dir, data_dir

if TYPE_CHECKING:
    from fixtures_services import Services

    from layerkit.build.builder import BuildResult
    from layerkit.build.progress import Progress

CORELIB_C = """
const char *corelib_version(void) { return "%s"; }
"""
MLKIT_C = r"""
#include <stdio.h>
#include <stdlib.h>
const char *corelib_version(void);
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10, a = 0, b = 1;
    for (long i = 0; i < n; i++) { long t = a + b; a = b; b = t; }
    printf("mlkit %s on corelib %s: fib(%ld) = %ld\n", "%s", corelib_version(), n, a);
    return 0;
}
"""
# The test channel's python: the base image's interpreter (whatever its version), seeing this
# prefix's site-packages, so `python -c "import pykit"` imports the locked package.
PY_WRAPPER = (
    "#!/bin/sh\n# test-channel python: the base image's interpreter\n"
    'PYTHONPATH="${0%/bin/*}/lib/python3.11/site-packages${PYTHONPATH:+:$PYTHONPATH}" '
    'exec /usr/bin/python3 "$@"\n'
)
PYKIT = {"lib/python3.11/site-packages/pykit/__init__.py": b'VERSION = "0.3"\n'}


def _gcc(args: list[str]) -> None:
    subprocess.run(["gcc", *args], check=True, capture_output=True)


def _compile(version_core: str, mlkit_version: str) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "lib").mkdir()
        (d / "bin").mkdir()
        (d / "corelib.c").write_text(CORELIB_C % version_core)
        (d / "mlkit.c").write_text(MLKIT_C.replace('"%s", corelib', f'"{mlkit_version}", corelib'))
        _gcc(["-shared", "-fPIC", "-O2", "-o", str(d / "lib/libcorelib.so"), str(d / "corelib.c")])
        _gcc(
            [
                "-O2",
                "-o",
                str(d / "bin/mlkit"),
                str(d / "mlkit.c"),
                f"-L{d / 'lib'}",
                "-lcorelib",
                "-Wl,-rpath,$ORIGIN/../lib",
            ]
        )
        return (d / "lib/libcorelib.so").read_bytes(), (d / "bin/mlkit").read_bytes()


def _write_package(channel: Path, pkg: fx.PkgDef, files: dict[str, bytes]) -> None:
    target = channel / pkg.subdir / pkg.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    paths = [
        {
            "_path": p,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        for p, data in sorted(files.items())
    ]
    meta = {
        "info/index.json": json.dumps(pkg.index_json(), indent=2, sort_keys=True).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}).encode(),
        "info/files": "".join(f"{p}\n" for p in sorted(files)).encode(),
    }
    with tarfile.open(target, "w:bz2", compresslevel=1) as tf:
        for name, data in [*meta.items(), *sorted(files.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if name.startswith("bin/") or name.endswith(".so") else 0o644
            tf.addfile(info, io.BytesIO(data))


def delta_packages(big_mb: int = 4) -> list[tuple[fx.PkgDef, dict[str, bytes]]]:
    """Packages for the env layer tests and bench (issue 18 §2): ``libcublas`` (named as the
    CUDA library, so a group of its own) with ``big_mb`` MB of incompressible bytes, the same
    on every run (a seeded generator: the same archive, so the same lock), and ``tinykit``
    1.0/1.1, a small package whose update is the one-package change."""
    import random

    blob = random.Random(18).randbytes(big_mb << 20)
    out = [(fx.PkgDef("libcublas", "12.1.0", "h0_0"), {"lib/libcublas.so.12": blob})]
    for ver in ("1.0", "1.1"):
        out.append((fx.PkgDef("tinykit", ver, "h0_0"), {"share/tinykit/VERSION": f"{ver}\n".encode()}))
    return out


def runnable_packages(root: Path, extra: Sequence[tuple[fx.PkgDef, dict[str, bytes]]] = ()) -> Path:
    """Create the channel at ``root`` (see module doc), with the ``extra`` packages; return ``root``."""
    from rattler.index import index_fs

    (root / "noarch").mkdir(parents=True, exist_ok=True)
    wrapper = PY_WRAPPER.encode()
    _write_package(
        root,
        fx.PkgDef("python", "3.11.9", "h0_0"),
        {"bin/python": wrapper, "bin/python3": wrapper, "bin/python3.11": wrapper},
    )
    for core in ("1.5", "2.1"):
        lib, _ = _compile(core, "1.0")
        _write_package(root, fx.PkgDef("corelib", core, "h0_0"), {"lib/libcorelib.so": lib})
    _, mlkit = _compile("x", "1.0")
    _write_package(root, fx.PkgDef("mlkit", "1.0", "h0_0", depends=["corelib >=1"]), {"bin/mlkit": mlkit})
    _write_package(root, fx.PkgDef("pykit", "0.3", "py_0", depends=["python >=3"]), PYKIT)
    for ver, dep in (("1.0", "corelib >=1,<2"), ("1.1", "corelib >=2")):
        data = {"share/datakit/VERSION": f"{ver}\n".encode()}
        _write_package(root, fx.PkgDef("datakit", ver, "h0_0", depends=[dep]), data)
    for pkg, files in extra:
        _write_package(root, pkg, files)
    import asyncio

    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    return root


def wheelhouse(root: Path, extra: Sequence[Path] = ()) -> Path:
    """A PEP 503 index at ``root/simple`` with the pinned py-rattler wheel and the ``extra``
    wheels (tests/fixtures_inference.py: the inference server's); return ``root``."""
    cache = cache_dir() / "wheelhouse"
    name, version, _ = INSTALLER_LIB  # the cross pip step's wheel installer (render/envinstall.py)
    pinned = (("py_rattler", RATTLER_VERSION, "py-rattler"), (name, version, name))
    wheels: list[Path] = []
    for stem, ver, requirement in pinned:
        found = sorted(cache.glob(f"{stem}-{ver}-*.whl"))
        if not found:
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                 "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11", "--implementation", "cp",
                 "-d", str(cache), f"{requirement}=={ver}"],
                check=True,
            )  # fmt: skip
            found = sorted(cache.glob(f"{stem}-{ver}-*.whl"))
        wheels += found
    (root / "files").mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[str]] = {}
    for wheel in [*wheels, *extra]:
        dest = root / "files" / wheel.name
        if not dest.exists():
            dest.hardlink_to(wheel)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        # PEP 503's normalized name: the wheel file's first field, lower case, runs of -_. as -.
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()
        projects.setdefault(project, []).append(
            f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>'
        )
    for project, links in projects.items():
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<!DOCTYPE html><html><body>\n" + "<br>\n".join(links) + "\n</body></html>\n")
    (root / "simple" / "index.html").write_text(
        "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
    )
    return root


@dataclass(frozen=True)
class Site:
    channel_url: str  # http://127.0.0.1:PORT (a conda channel)
    pypi_url: str  # http://127.0.0.1:PORT/simple
    channel_requests: list[str] = field(default_factory=list)  # GET paths, in order


@contextmanager
def airgap_site(
    root: Path,
    on_get: Callable[[str], None] | None = None,
    extra_wheels: Sequence[Path] = (),
    extra_packages: Sequence[tuple[fx.PkgDef, dict[str, bytes]]] = (),
) -> Iterator[Site]:
    """``on_get(path)``: called before the channel serves each GET (it may block).
    ``extra_wheels``: more wheels on the PyPI mirror (the inference server's, for the demo).
    ``extra_packages``: more conda packages in the channel (``delta_packages()``)."""
    channel = runnable_packages(root / "channel", extra_packages)
    index = wheelhouse(root / "pypi", extra_wheels)
    requests: list[str] = []
    chan_url, stop_chan = fx.serve_directory(channel, requests, on_get=on_get)
    pypi_url, stop_pypi = fx.serve_directory(index)
    try:
        yield Site(chan_url, f"{pypi_url}/simple", requests)
    finally:
        stop_chan()
        stop_pypi()


def site_layer(
    site: Site,
    base_image: str,
    registry: str | None,
    installer_image: str | None = None,
    base_mirror: str | None = None,
) -> str:
    """A spec layer pointing a spec at the site: channel mirror, PyPI mirror, base (pulled
    through `base_mirror` when given), registry."""
    lines = [
        f"base:\n  image: {base_image}\n",
        # The site's installer image: the Debian 12 base (Python 3.11, venv), as an air-gapped
        # site mirrors one; Docker Hub's python image is out of reach here.
        f"conda:\n  channels: [demo]\n  installer: rattler\n  installer_image: {installer_image or base_image}\n",
        f"mirrors:\n  channels: {{demo: '{site.channel_url}'}}\n  pypi_index: '{site.pypi_url}'\n",
    ]
    if base_mirror:
        lines.append(f"  base_registry: {base_mirror}\n")
    if registry:
        lines.append(f"registry:\n  address: {registry}\n")
    return "".join(lines)


# What the build tests install: a program linked against a library, from the site's channel.
DEPS = ("python=3.11", "datakit=1.0", "mlkit=1.0")


def site_spec(
    folder: Path,
    site: Site,
    services: Services,
    *,
    repo: str,
    deps: Sequence[str] = DEPS,
    registry: str | None = None,
    extra: str = "",
    lock: bool = True,
    base: str | None = None,
) -> Path:
    """A spec on the site (its channel, mirror, base and registry), locked unless lock=False."""
    folder.mkdir(parents=True, exist_ok=True)
    layer = site_layer(site, base or services.base_image, registry or services.registry)
    (folder / "site.yaml").write_text(layer + f"  repository: {repo}\n" + extra)
    spec = folder / "layerkit.yaml"
    spec.write_text(
        "name: demo-train\nversion: '1'\nextends: [site.yaml]\n"
        f"conda:\n  dependencies: {json.dumps(list(deps))}\n"
        "steps:\n  - run: ['mlkit', '12']\n    stage: final\n"
    )
    if lock:
        lock_spec(spec)
    return spec


def lock_spec(spec: Path) -> None:
    """`layerkit lock SPEC`, which must succeed."""
    proc = subprocess.run(
        [sys.executable, "-m", "layerkit", "-q", "lock", str(spec)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def build_spec(spec: Path, services: Services, **kw: object) -> tuple[BuildResult, Progress]:
    """`api.build` on the services' dockerd, host network (the site is on 127.0.0.1), quiet."""
    from layerkit import api
    from layerkit.build.builder import BuildOptions
    from layerkit.build.progress import Progress

    progress = Progress("quiet")
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="host", **kw)  # type: ignore[arg-type]
    return api.build(spec, options=opts, progress=progress), progress


def install_env_module() -> ModuleType:
    """templates/install_env.py (shipped into the env stage) imported here, to test its functions."""
    spec = importlib.util.spec_from_file_location("install_env", data_dir("templates") / "install_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_states(progress: Progress, phase: str = "image") -> dict[str, bool]:
    """Dockerfile step -> came back CACHED, for one solve (phase) of a build."""
    from layerkit.build.progress import is_build_step

    return {s.name: s.cached for s in progress.steps.values() if s.phase == phase and is_build_step(s.name)}


def image_layers(registry: str, ref: str, platform: str = "linux/amd64") -> list[tuple[str, int]]:
    """(digest, compressed size) of each layer of image `ref` as the registry serves it: the
    manifest, or `platform`'s in an index (attestation entries are skipped)."""
    import urllib.request

    from layerkit.build.registry import MANIFEST_TYPES

    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)

    def get(reference: str) -> dict[str, object]:
        url = f"http://{registry}/v2/{repo}/manifests/{reference}"
        req = urllib.request.Request(url, headers={"Accept": ", ".join(MANIFEST_TYPES)})
        with urllib.request.urlopen(req, timeout=60) as resp:
            doc: dict[str, object] = json.loads(resp.read())
        return doc

    doc = get(tag)
    if "manifests" in doc:
        os_name, arch = platform.split("/")
        entries = [m for m in doc["manifests"] if isinstance(m, dict)]  # type: ignore[attr-defined]
        wanted = [
            m
            for m in entries
            if m.get("platform", {}).get("os") == os_name and m["platform"].get("architecture") == arch
        ]
        assert len(wanted) == 1, f"{ref}: no single {platform} manifest in {entries}"
        doc = get(str(wanted[0]["digest"]))
    layers = doc["layers"]
    assert isinstance(layers, list)
    return [(str(layer["digest"]), int(layer["size"])) for layer in layers]
