"""Multi-platform (linux/amd64 + linux/arm64) test infrastructure, made without layerkit's code:

- a multi-arch base: the amd64 Debian 12 base of the services (minbase + python3-venv) and an
  arm64 Debian 12 minbase (scripts/services/base-image.sh --arch arm64 bookworm-minbase,
  debootstrapped under QEMU once and cached), both pushed to the test registry and joined
  by an OCI image index under one tag, assembled here over the registry's plain HTTP API;
- a conda channel with linux-64, linux-aarch64 and noarch packages: one name and version per
  arch, each carrying share/archkit/arch.txt (x86_64 or aarch64) and bin/archkit, a static
  binary for that arch (gcc, aarch64-linux-gnu-gcc) printing the machine uname(2) reports, so
  a container shows that the right arch's package was installed and runs;
- a spec with ``platforms: [linux-64, linux-aarch64]`` on both, ready to lock.

QEMU runs arm64 binaries through binfmt_misc (scripts/services/binfmt.sh, run by
scripts/setup-system.sh).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fixtures_build as fb
import fixtures_channels as fx
import pytest
from fixtures_services import SERVICES, Services, run_script

from layerkit.render.envinstall import RATTLER_VERSION
from layerkit.resources import cache_dir

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

# conda subdir -> (uname -m, C compiler, OCI platform)
ARCHES = {
    "linux-64": ("x86_64", "gcc", "linux/amd64"),
    "linux-aarch64": ("aarch64", "aarch64-linux-gnu-gcc", "linux/arm64"),
}
MACHINE_C = r"""
#include <stdio.h>
#include <sys/utsname.h>
int main(void) {
    struct utsname u;
    if (uname(&u) != 0) return 1;
    printf("%s\n", u.machine);
    return 0;
}
"""


@dataclass(frozen=True)
class MultiarchBase:
    ref: str  # localhost:PORT/debian:bookworm-multi, the OCI image index
    digest: str  # sha256:... of the index
    platforms: dict[str, str]  # "linux/amd64" -> localhost:PORT/debian@sha256:... (its manifest)


# --- the registry, over plain HTTP ------------------------------------------------------------


def _url(registry: str, path: str) -> str:
    # The registry listens on 127.0.0.1; "localhost" may resolve to ::1 first.
    return f"http://127.0.0.1:{registry.rsplit(':', 1)[1]}/v2/{path}"


def get_manifest(registry: str, repo: str, reference: str) -> tuple[bytes, str]:
    """A manifest's bytes as stored (its digest is theirs) and its media type."""
    req = urllib.request.Request(_url(registry, f"{repo}/manifests/{reference}"), headers={"Accept": ACCEPT})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read(), resp.headers["Content-Type"]


def get_blob(registry: str, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(_url(registry, f"{repo}/blobs/{digest}"), timeout=60) as resp:
        return bytes(resp.read())


def put_index(registry: str, repo: str, tag: str, refs: list[str]) -> str:
    """Push an image index at repo:tag over the manifests at repo:<ref> for each ref (each one
    platform's image, in the same repository); its platform entries are read from each image's
    config. Docker manifests get a Docker manifest list, OCI ones an OCI index, as
    `docker manifest create` and buildx do. Return the index digest."""
    entries = []
    for ref in refs:
        body, media_type = get_manifest(registry, repo, ref)
        manifest = json.loads(body)
        config = json.loads(get_blob(registry, repo, manifest["config"]["digest"]))
        platform = {"architecture": config["architecture"], "os": config["os"]}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        entries.append({"mediaType": media_type, "digest": digest, "size": len(body), "platform": platform})
    kind = DOCKER_LIST if all(e["mediaType"] == DOCKER_MANIFEST for e in entries) else OCI_INDEX
    index = json.dumps({"schemaVersion": 2, "mediaType": kind, "manifests": entries}, indent=2).encode()
    req = urllib.request.Request(
        _url(registry, f"{repo}/manifests/{tag}"), data=index, method="PUT", headers={"Content-Type": kind}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            digest = resp.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as err:
        pytest.fail(f"registry refused the index {repo}:{tag}: {err.code} {err.read()[:500]!r}")
    assert digest == "sha256:" + hashlib.sha256(index).hexdigest(), digest
    return str(digest)


def put_blob(registry: str, repo: str, data: bytes) -> str:
    """A blob, uploaded in one request (POST, then PUT with its digest); its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with urllib.request.urlopen(
        urllib.request.Request(_url(registry, f"{repo}/blobs/uploads/"), method="POST")
    ) as r:
        location = r.headers["Location"]
    url = location if location.startswith("http") else _url(registry, "").removesuffix("/v2/") + location
    sep = "&" if "?" in url else "?"
    req = urllib.request.Request(
        f"{url}{sep}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(req, timeout=120).close()
    return digest


def set_architecture(registry: str, repo: str, tag: str, arch: str) -> None:
    """Make repo:tag's config say `arch` (same layers) if it does not: Debian 12's dockerd 20.10
    ignores `docker import --platform` (experimental there), so its import says amd64 whatever
    the rootfs holds."""
    body, media_type = get_manifest(registry, repo, tag)
    manifest = json.loads(body)
    config = json.loads(get_blob(registry, repo, manifest["config"]["digest"]))
    if config["architecture"] == arch:
        return
    config["architecture"] = arch
    data = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": put_blob(registry, repo, data), "size": len(data)}
    req = urllib.request.Request(
        _url(registry, f"{repo}/manifests/{tag}"), data=json.dumps(manifest).encode(), method="PUT",
        headers={"Content-Type": media_type},
    )  # fmt: skip
    urllib.request.urlopen(req, timeout=60).close()


def index_platforms(registry: str, repo: str, reference: str) -> dict[str, str]:
    """Each entry's "os/architecture" -> its manifest digest, from the index at repo:reference."""
    body, media_type = get_manifest(registry, repo, reference)
    assert media_type in (OCI_INDEX, DOCKER_LIST), media_type
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in json.loads(body)["manifests"]
    }


def multiarch_base(services: Services, tag: str = "bookworm-multi") -> MultiarchBase:
    """The index at localhost:PORT/debian:<tag> over the services' amd64 base (debian:bookworm)
    and the arm64 minbase (pushed as debian:bookworm-minbase-arm64)."""
    port = services.registry.rsplit(":", 1)[1]
    repo, amd64_tag = services.base_image.split("/", 1)[1].split(":")
    arm64 = run_script(
        SERVICES / "base-image.sh", "--arch", "arm64", services.docker_host, f"127.0.0.1:{port}",
        f"{repo}:bookworm-minbase-arm64", "bookworm-minbase", timeout=1800,
    )  # fmt: skip
    arm64_tag = arm64.rsplit(":", 1)[1]
    set_architecture(services.registry, repo, arm64_tag, "arm64")
    digest = put_index(services.registry, repo, tag, [amd64_tag, arm64_tag])
    found = index_platforms(services.registry, repo, tag)
    assert set(found) == {"linux/amd64", "linux/arm64"}, found  # e.g. arm64 imported as amd64
    platforms = {p: f"{services.registry}/{repo}@{d}" for p, d in sorted(found.items())}
    return MultiarchBase(f"{services.registry}/{repo}:{tag}", digest, platforms)


# --- the conda channel ------------------------------------------------------------------------


def machine_binary(subdir: str) -> bytes:
    """bin/archkit for a conda subdir: static (no loader or libc needed in the image)."""
    _, compiler, _ = ARCHES[subdir]
    if shutil.which(compiler) is None:
        pytest.fail(f"{compiler} is missing: scripts/setup-system.sh installs it (gcc-aarch64-linux-gnu)")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "machine.c", Path(tmp) / "archkit"
        src.write_text(MACHINE_C)
        subprocess.run(
            [compiler, "-static", "-O2", "-s", "-o", str(out), str(src)], check=True, capture_output=True
        )
        return out.read_bytes()


def multiarch_channel(root: Path) -> Path:
    """The channel at ``root`` (see module doc); return ``root``.

    - ``archkit 1.0 h0_0`` in linux-64 and linux-aarch64: share/archkit/arch.txt and
      bin/archkit for its arch; depends on archdata;
    - ``archdata 1.0 0`` noarch (generic): share/archdata/README, the same on every platform;
    - ``python 3.11.9 h0_0`` in both subdirs: fixtures_build's wrapper around the base image's
      /usr/bin/python3 (the arm64 minbase has none: run it on amd64 only).
    """
    import asyncio

    from rattler.index import index_fs

    (root / "noarch").mkdir(parents=True, exist_ok=True)
    wrapper = fb.PY_WRAPPER.encode()
    for subdir, (machine, _, _) in ARCHES.items():
        files = {"share/archkit/arch.txt": f"{machine}\n".encode(), "bin/archkit": machine_binary(subdir)}
        fb._write_package(
            root, fx.PkgDef("archkit", "1.0", "h0_0", depends=["archdata 1.0"], subdir=subdir), files
        )
        python = {"bin/python": wrapper, "bin/python3": wrapper, "bin/python3.11": wrapper}
        fb._write_package(root, fx.PkgDef("python", "3.11.9", "h0_0", subdir=subdir), python)
    readme = {"share/archdata/README": b"archdata: the same bytes on every platform\n"}
    fb._write_package(root, fx.PkgDef("archdata", "1.0", "0", subdir="noarch"), readme)
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    shutil.rmtree(root / ".tmp", ignore_errors=True)
    return root


def rattler_wheels_aarch64() -> list[Path]:
    """The installer's py-rattler for manylinux aarch64 (2_28: glibc >= 2.28; PyPI has no 2_17
    aarch64 wheel), from PyPI once, cached apart from fixtures_build's x86_64 wheelhouse (whose
    presence check globs its folder): what an installer run under emulation needs."""
    cache = cache_dir() / "wheelhouse-aarch64"
    pattern = f"py_rattler-{RATTLER_VERSION}-*aarch64*.whl"
    if not sorted(cache.glob(pattern)):
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--platform", "manylinux_2_28_aarch64", "--python-version", "3.11", "--implementation", "cp",
             "-d", str(cache), f"py-rattler=={RATTLER_VERSION}"],
            check=True, timeout=900,
        )  # fmt: skip
    return sorted(cache.glob(pattern))


def arm64_installer_image(
    services: Services, repo: str = "debian:bookworm-arm64", suite: str = "bookworm-unpacked"
) -> str:
    """Optional, for a fully emulated install (bench): an arm64 Debian 12 with python3-venv
    pushed as localhost:PORT/<repo>. By default python3-venv's packages unpacked onto the arm64
    minbase without maintainer scripts (~35 s cold on top of it; no .pyc, no CA bundle: the
    mirrors are plain HTTP); suite="bookworm" configures them under QEMU instead, as the amd64
    base is (~12 min cold, 4 of them CPU). Either is cached; scripts/setup-system.sh makes
    neither."""
    port = services.registry.rsplit(":", 1)[1]
    return run_script(
        SERVICES / "base-image.sh", "--arch", "arm64", services.docker_host, f"127.0.0.1:{port}", repo,
        suite, timeout=3600,
    )  # fmt: skip


@contextmanager
def multiarch_site(root: Path) -> Iterator[fb.Site]:
    """The multi-arch channel and the PyPI mirror served on 127.0.0.1. The mirror holds the
    installer's py-rattler for x86_64 (fixtures_build.wheelhouse: the installer runs on the
    build platform) and for aarch64 (an installer under emulation); pip picks by platform."""
    channel = multiarch_channel(root / "channel")
    index = fb.wheelhouse(root / "pypi", rattler_wheels_aarch64())
    requests: list[str] = []
    chan_url, stop_chan = fx.serve_directory(channel, requests)
    pypi_url, stop_pypi = fx.serve_directory(index)
    try:
        yield fb.Site(chan_url, f"{pypi_url}/simple", requests)
    finally:
        stop_chan()
        stop_pypi()


DEPS = ("archkit=1.0",)
STEPS = (("archkit",),)


def multiarch_spec(
    folder: Path, site: fb.Site, base: MultiarchBase, services: Services, *, repo: str, lock: bool = True,
    steps: Sequence[Sequence[str]] = STEPS,
) -> Path:  # fmt: skip
    """A spec for both platforms on the multi-arch base (the installer image too: its amd64
    entry has python3-venv), the site's channel and mirror, the services' registry; locked by
    real conda-lock (`layerkit lock`) unless lock=False. steps: the runtime stage's RUN commands."""
    folder.mkdir(parents=True, exist_ok=True)
    layer = fb.site_layer(site, base.ref, services.registry)
    (folder / "site.yaml").write_text(layer + f"  repository: {repo}\n")
    spec = folder / "layerkit.yaml"
    spec.write_text(
        "name: demo-multi\nversion: '1'\nextends: [site.yaml]\n"
        "platforms: [linux-64, linux-aarch64]\n"
        f"conda:\n  dependencies: {json.dumps(list(DEPS))}\n"
        "steps:\n" + "".join(f"  - run: {json.dumps(list(s))}\n    stage: final\n" for s in steps)
    )
    if lock:
        fb.lock_spec(spec)
    return spec
