"""The multi-platform test infrastructure works (tests/fixtures_multiarch.py), shown without
layerkit's build code: the base index in the registry lists linux/amd64 and linux/arm64, each
platform's image says its own architecture, and a handwritten Dockerfile FROM the index builds
through dockerd 26's BuildKit for each platform, with the channel's archkit package for that
platform, and runs: `uname -m`, the RUN step's record of it, the package's static binary and
its arch.txt all name the platform's machine (arm64 under QEMU). The two-platform spec locks
(real conda-lock) to each platform's own package."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import docker
import fixtures_multiarch as fm
import pytest
from fixtures_build import Site
from fixtures_services import Services, container_output

pytestmark = pytest.mark.integration

# Debian 12's docker CLI (docker.io, scripts/setup-system.sh) drives the engine's BuildKit itself
# (DOCKER_BUILDKIT=1); newer CLIs need the buildx plugin for that, which may be absent.
DOCKER_CLI = "/usr/bin/docker"
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
SUBDIRS = {"linux/amd64": "linux-64", "linux/arm64": "linux-aarch64"}
DOCKERFILE = """FROM {base}
COPY pkg/ /opt/env/
RUN uname -m > /built-on
CMD ["sh", "-c", "uname -m; cat /built-on; /opt/env/bin/archkit; cat /opt/env/share/archkit/arch.txt"]
"""


@pytest.fixture(scope="module")
def locked(
    services: Services,
    multiarch_base: fm.MultiarchBase,
    multiarch_site: Site,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The two-platform spec, locked by real conda-lock (`layerkit lock`); its folder."""
    return fm.multiarch_spec(
        tmp_path_factory.mktemp("multi"), multiarch_site, multiarch_base, services, repo="mi"
    ).parent


def test_index_lists_both_platforms_each_image_its_own_arch(
    services: Services, multiarch_base: fm.MultiarchBase
) -> None:
    repo, tag = multiarch_base.ref.split("/", 1)[1].split(":")
    found = fm.index_platforms(services.registry, repo, tag)
    assert set(found) == {"linux/amd64", "linux/arm64"}
    assert len(set(found.values())) == 2  # two distinct images
    for platform, digest in found.items():
        body, media_type = fm.get_manifest(services.registry, repo, digest)
        assert media_type in (fm.OCI_MANIFEST, fm.DOCKER_MANIFEST)
        config = json.loads(fm.get_blob(services.registry, repo, json.loads(body)["config"]["digest"]))
        assert f"{config['os']}/{config['architecture']}" == platform
        assert multiarch_base.platforms[platform].endswith("@" + digest)


def test_lock_names_each_platforms_own_package(locked: Path) -> None:
    for subdir in SUBDIRS.values():
        urls = [u for u in (locked / f"layerkit.{subdir}.explicit.txt").read_text().split() if "://" in u]
        names = {u.split("/")[-2] + "/" + u.split("/")[-1].split("#")[0] for u in urls}
        assert names == {"noarch/archdata-1.0-0.tar.bz2", f"{subdir}/archkit-1.0-h0_0.tar.bz2"}


@pytest.mark.parametrize("platform", sorted(MACHINES))
def test_dockerfile_from_the_index_builds_and_runs_per_platform(
    services: Services, multiarch_base: fm.MultiarchBase, multiarch_site: Site, tmp_path: Path, platform: str
) -> None:
    if not os.access(DOCKER_CLI, os.X_OK):
        pytest.fail(f"{DOCKER_CLI} is missing: scripts/setup-system.sh installs it (docker.io)")
    # The channel's archkit package for this platform (straight from the channel: no layerkit
    # code in this proof), unpacked into the build context.
    url = f"{multiarch_site.channel_url}/{SUBDIRS[platform]}/archkit-1.0-h0_0.tar.bz2"
    with urllib.request.urlopen(url, timeout=60) as resp, tarfile.open(fileobj=resp, mode="r|bz2") as tf:
        tf.extractall(tmp_path / "pkg", filter=lambda m, _: None if m.name.startswith("info/") else m)
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(base=multiarch_base.ref))
    tag = f"lk-multiarch-infra-{platform.split('/')[1]}:test"
    env = {**os.environ, "DOCKER_HOST": services.docker_host, "DOCKER_BUILDKIT": "1"}
    # --network none: the engine has no bridge, and the build needs nothing but the registry.
    build = [DOCKER_CLI, "build", "--network", "none", "--platform", platform, "-t", tag, str(tmp_path)]
    proc = subprocess.run(build, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = docker.DockerClient(base_url=services.docker_host)
    try:
        assert client.images.get(tag).attrs["Architecture"] == platform.split("/")[1]
        out = container_output(client, tag, [], platform=platform).decode().split()
    finally:
        client.images.remove(tag, force=True)
        client.close()
    assert out == [MACHINES[platform]] * 4


def test_archkit_binaries_are_built_for_their_arch() -> None:
    """Each subdir's bin/archkit is an ELF for that arch (e_machine), not one binary twice."""
    machines = {}
    for subdir in fm.ARCHES:
        binary = fm.machine_binary(subdir)
        assert binary[:4] == b"\x7fELF"
        machines[subdir] = int.from_bytes(binary[18:20], "little")
    assert machines == {"linux-64": 62, "linux-aarch64": 183}  # EM_X86_64, EM_AARCH64
