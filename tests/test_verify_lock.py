"""Issue 15 §2: every package is verified against the lock, for real.

A site's channel serves a package; `layerkit lock` records its checksums; then the channel
serves another file under the same name (rebuilt with other content, re-indexed, so its
repodata agrees with it). `layerkit build` must fail, naming the package and both digests;
with the locked file back, the same lock builds. The same for a pip wheel on the site's
PyPI mirror. Each package carries this run's random payload, so no package cache of the
engine (the BuildKit cache mount of rattler's packages) can hold it from another test.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import fixtures_build as fb
import fixtures_channels as fx
import fixtures_pip as fp
import pytest
from fixtures_services import Services, container_output

from layerkit import api

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]


def _publish(channel: Path, payload: str) -> str:
    """(Re)write tamperkit 1.0 into `channel` with `payload`, re-index; its sha256."""
    from rattler.index import index_fs

    pkg = fx.PkgDef("tamperkit", "1.0", "h0_0")
    fb._write_package(channel, pkg, {"share/tamperkit/ID": payload.encode()})
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))
    return hashlib.sha256((channel / pkg.subdir / pkg.filename).read_bytes()).hexdigest()


def _build(spec: Path, services: Services) -> subprocess.CompletedProcess[str]:
    """`layerkit build` as a user runs it, on the services' engine (host network: the site)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    addr = f"docker://{services.docker_host}"
    return subprocess.run(
        [sys.executable, "-m", "layerkit", "build", str(spec), "--addr", addr, "--network", "host"],
        capture_output=True,
        text=True,
        env=env,
    )


def _locked_sha256(spec: Path, name: str) -> str | None:
    lock = api.read_lock(spec.with_name("layerkit.conda-lock.yml"))
    return next(p.sha256 for p in lock.packages if p.name == name)


def test_a_conda_package_changed_after_locking_fails_the_build(services: Services, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    with fb.airgap_site(tmp_path / "site") as site:
        channel = tmp_path / "site" / "channel"
        good = _publish(channel, f"{tag}\n")
        spec = fb.site_spec(
            tmp_path / "spec", site, services, repo=f"verify/{tag[:8]}", deps=(*fb.DEPS, "tamperkit=1.0")
        )
        assert _locked_sha256(spec, "tamperkit") == good
        bad = _publish(channel, f"tampered {tag}\n")
        assert bad != good

        failed = _build(spec, services)
        assert failed.returncode == 3, failed.stderr[-3000:]
        said = [ln for ln in failed.stderr.splitlines() if "is not the locked package" in ln]
        assert said, failed.stderr[-3000:]
        assert "tamperkit-1.0-h0_0.tar.bz2" in said[0]
        assert f"expected sha256 {good}" in said[0] and f"got {bad}" in said[0]

        # The locked file back: the same lock builds, and the image holds that file's content.
        assert _publish(channel, f"{tag}\n") == good
        built = _build(spec, services)
        assert built.returncode == 0, built.stderr[-3000:]
    image = f"{services.registry}/verify/{tag[:8]}:{api.hash_spec(spec).hash}"
    client = docker.DockerClient(base_url=services.docker_host)
    out = container_output(client, image, ["cat", "/opt/env/share/tamperkit/ID"])
    assert out.decode() == f"{tag}\n"


# --- pip -----------------------------------------------------------------------------------
# The channel and wheel makers live in fixtures_pip.py (the mirror test uses them too).


def _pip_spec(folder: Path, site_layer: str) -> Path:
    """A spec locking tinywheel 1.0 from the site's PyPI mirror, locked."""
    folder.mkdir()
    (folder / "site.yaml").write_text(site_layer)
    spec = folder / "layerkit.yaml"
    spec.write_text(
        "name: verify-pip\nversion: '1'\nextends: [site.yaml]\n"
        "conda:\n  dependencies: [python=3.11, pip]\n  pip: [tinywheel==1.0]\n"
    )
    fb.lock_spec(spec)
    return spec


def test_a_pip_wheel_changed_after_locking_fails_the_build(services: Services, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    channel = fp.pip_channel(tmp_path / "channel")
    index = fb.wheelhouse(tmp_path / "pypi")
    good = fp.publish_wheel(index, tag)
    chan_url, stop_chan = fx.serve_directory(channel)
    pypi_url, stop_pypi = fx.serve_directory(index)
    repo = f"verify/pip-{tag[:8]}"
    try:
        site = fb.Site(chan_url, f"{pypi_url}/simple")
        layer = fb.site_layer(site, services.base_image, services.registry) + f"  repository: {repo}\n"
        spec = _pip_spec(tmp_path / "spec", layer)
        assert _locked_sha256(spec, "tinywheel") == good
        bad = fp.publish_wheel(index, f"tampered {tag}")
        assert bad != good

        failed = _build(spec, services)
        assert failed.returncode == 3, failed.stderr[-3000:]
        # pip's --require-hashes report: the requirement, then the lock's digest and the served one.
        assert "DO NOT MATCH THE HASHES" in failed.stderr, failed.stderr[-3000:]
        assert "tinywheel" in failed.stderr and good in failed.stderr and bad in failed.stderr

        assert fp.publish_wheel(index, tag) == good
        built = _build(spec, services)
        assert built.returncode == 0, built.stderr[-3000:]
    finally:
        stop_chan()
        stop_pypi()
    image = f"{services.registry}/{repo}:{api.hash_spec(spec).hash}"
    client = docker.DockerClient(base_url=services.docker_host)
    out = container_output(
        client, image, ["/opt/env/bin/python", "-c", "import tinywheel; print(tinywheel.TAG)"]
    )
    assert out.decode() == f"{tag}\n"


def test_a_wheel_republished_under_its_version_is_locked_by_its_new_digest(tmp_path: Path) -> None:
    """A mirror that serves another tinywheel 1.0 at the same URL (a rebuilt wheel, a devpi
    index reset): the next lock records the file served now. conda-lock's pip resolver keeps
    release metadata per index URL and version in the user's cache; read back there, it made
    the lock fail ("Retrieved digests ... not in poetry.lock metadata") or could record the
    old file's dependencies. No cache may change what a command outputs."""
    channel = fp.pip_channel(tmp_path / "channel")
    index = fb.wheelhouse(tmp_path / "pypi")
    first = fp.publish_wheel(index, uuid.uuid4().hex)
    chan_url, stop_chan = fx.serve_directory(channel)
    pypi_url, stop_pypi = fx.serve_directory(index)
    try:
        site = fb.Site(chan_url, f"{pypi_url}/simple")
        spec = _pip_spec(tmp_path / "spec", fb.site_layer(site, "localhost:1/base:1", "localhost:1"))
        assert _locked_sha256(spec, "tinywheel") == first
        second = fp.publish_wheel(index, uuid.uuid4().hex)
        assert second != first
        fb.lock_spec(spec)  # the same index URL: the server is the same one
        assert _locked_sha256(spec, "tinywheel") == second
    finally:
        stop_chan()
        stop_pypi()
