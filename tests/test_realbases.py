"""Environments built for real on bases shaped like the ones users have (tests/fixtures_bases.py):
Debian 11 with Python 3.9, an Azure-ML-shaped image with Miniconda's older Python first on
PATH, and an image with nvidia/cuda's config. For each: lock -> build -> `layerkit run ...
-- python -c 'import pykit'`, and the base's PATH, LD_LIBRARY_PATH and NVIDIA_* survive in
the final image's config and in the running container.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_bases as fbases
import fixtures_build as fb
import pytest
from fixtures_services import Services

pytestmark = pytest.mark.integration

# No compiled program: the test channel's are linked on this machine's glibc 2.36 and need
# GLIBC_2.34 symbols that Debian 11 lacks (without saying so in their metadata).
DEPS = ["python=3.11", "pykit=0.3", "datakit=1.0"]
PROBE = (
    'import os, pykit; print("pykit", pykit.VERSION); '
    'print(json.dumps({k: os.environ.get(k, "") for k in sorted(os.environ)}))'
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


@pytest.fixture(scope="module")
def bases(services: Services) -> dict[str, str]:
    return fbases.shaped_bases(services)


def _spec(folder: Path, site: fb.Site, services: Services, base: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # The installer image is the site's Debian 12 (Python 3.11); the base is the shaped one.
    layer = fb.site_layer(site, base, services.registry, installer_image=services.base_image)
    (folder / "site.yaml").write_text(layer + f"  repository: realbase/{folder.name}\n")
    spec = folder / "layerkit.yaml"
    spec.write_text(
        f"name: {folder.name}\nversion: '1'\nextends: [site.yaml]\n"
        f"conda:\n  dependencies: {json.dumps(DEPS)}\n"
        # A final-stage step uses the env: its PATH is in effect during the build.
        "steps:\n  - run: ['python', '-c', 'import pykit']\n    stage: final\n"
    )
    return spec


def _layerkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "layerkit", *args], capture_output=True, text=True, timeout=900
    )


@pytest.mark.parametrize("shape", sorted(fbases.SHAPES))
def test_env_builds_and_runs_on_a_real_shaped_base_and_keeps_its_paths(
    shape: str, tmp_path: Path, site: fb.Site, services: Services, bases: dict[str, str]
) -> None:
    spec = _spec(tmp_path / shape, site, services, bases[shape])
    r = _layerkit("-q", "lock", str(spec))
    assert r.returncode == 0, r.stderr
    addr = ["--addr", f"docker://{services.docker_host}", "--network", "host"]
    r = _layerkit("build", str(spec), *addr, "--progress", "plain", "--json")
    assert r.returncode == 0, r.stderr[-4000:]
    image = json.loads(r.stdout)["image"]

    # The base's interpreter is Python 3.9: the env install must not have run on it.
    r = _layerkit(
        "run",
        str(spec),
        *addr,
        "--source",
        str(tmp_path),
        "--run-network",
        "none",
        "--",
        "python",
        "-c",
        "import json; " + PROBE,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "pykit 0.3"
    running = json.loads(lines[-1])
    config = docker.DockerClient(base_url=services.docker_host).images.get(image).attrs["Config"]
    in_image = dict(item.split("=", 1) for item in config["Env"])
    for env in (running, in_image):
        path = env["PATH"].split(":")
        assert path[0] == "/opt/env/bin", env["PATH"]
        for var, kept in fbases.SHAPES[shape].kept.items():
            assert kept in env[var], f"{var}={env[var]!r} lost the base's {kept!r}"
        # Nothing dropped: every entry of the base's PATH is still there, in its order.
        base_path = fbases.SHAPES[shape].env["PATH"].split(":")
        assert [p for p in path if p in base_path] == base_path

    # `python` is the env's, not the base's Miniconda or /usr/bin one.
    r = _layerkit(
        "run",
        str(spec),
        *addr,
        "--source",
        str(tmp_path),
        "--run-network",
        "none",
        "--",
        "sh",
        "-c",
        "command -v python",
    )
    assert r.returncode == 0 and r.stdout.strip() == "/opt/env/bin/python", r.stdout + r.stderr
