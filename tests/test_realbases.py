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
from fixtures_services import Services, container_output

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
        [sys.executable, "-m", "layerkit", *args], capture_output=True, text=True, timeout=1800
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

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return _layerkit(
            "run", str(spec), *addr, "--source", str(tmp_path), "--run-network", "none", "--", *cmd
        )

    # The base's interpreter is Python 3.9: the env install must not have run on it.
    r = run("python", "-c", "import json; " + PROBE)
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

    # The image's own user (uid 1000) reads the environment's package records.
    engine = docker.DockerClient(base_url=services.docker_host)
    out = container_output(engine, image, ["sh", "-c", "cat /opt/env/conda-meta/pykit-*.json"], user="1000")
    assert json.loads(out)["name"] == "pykit"

    # `python` is the env's, not the base's Miniconda or /usr/bin one.
    r = run("sh", "-c", "command -v python")
    assert r.returncode == 0 and r.stdout.strip() == "/opt/env/bin/python", r.stdout + r.stderr


def test_a_base_with_an_older_glibc_than_the_lock_needs_fails_the_build_saying_so(
    tmp_path: Path, site: fb.Site, services: Services, bases: dict[str, str]
) -> None:
    """The catalog does not know this base's glibc (Debian 11: 2.31), so the build checks it.
    The lock stands for one made for a newer base: a package that needs glibc 2.99."""
    spec = _spec(tmp_path / "oldglibc", site, services, bases["debian11"])
    assert _layerkit("-q", "lock", str(spec)).returncode == 0
    lockfile = spec.with_name("layerkit.conda-lock.yml")
    text = lockfile.read_text()
    start = text.index("- name: pykit\n")
    deps = text.index("  dependencies:\n", start) + len("  dependencies:\n")
    lockfile.write_text(text[:deps] + "    __glibc: '>=2.99'\n" + text[deps:])
    addr = ["--addr", f"docker://{services.docker_host}", "--network", "host"]
    r = _layerkit("build", str(spec), *addr, "--progress", "plain")
    assert r.returncode == 3, r.stderr[-3000:]
    assert "the locked packages need glibc >= 2.99; this base has 2.31" in r.stderr


def test_search_paths_extend_the_bases_value_or_dockers_default_in_buildkit(
    services: Services, bases: dict[str, str]
) -> None:
    """The ENV values render gives, as BuildKit's Dockerfile frontend expands them: on the
    CUDA-shaped base (PATH and LD_LIBRARY_PATH set) and on one whose config sets neither."""
    from layerkit.build.client import BuildkitClient
    from layerkit.build.llb import dockerfile_inputs
    from layerkit.render.envvars import DEFAULT_PATH, prepend

    env = f"ENV PATH={prepend('PATH', ['/opt/env/bin'])} LD_LIBRARY_PATH={prepend('LD_LIBRARY_PATH', ['/opt/mpi/lib'])}"
    engine = docker.DockerClient(base_url=services.docker_host)
    got = {}
    with BuildkitClient(f"docker://{services.docker_host}") as client:
        for name, base in (("cuda", bases["cuda"]), ("bare", services.base_image)):
            ref = f"{services.registry}/envexpand/{name}:1"
            client.solve(
                frontend="dockerfile.v0",
                frontend_attrs={"filename": "Dockerfile"},
                frontend_inputs=dockerfile_inputs(f"FROM {base}\n{env}\n"),
                exporter="moby",
                exporter_attrs={"name": ref},
            )
            got[name] = dict(e.split("=", 1) for e in engine.images.get(ref).attrs["Config"]["Env"])
    cuda = fbases.SHAPES["cuda"].env
    assert got["cuda"]["PATH"] == f"/opt/env/bin:{cuda['PATH']}"
    assert got["cuda"]["LD_LIBRARY_PATH"] == f"/opt/mpi/lib:{cuda['LD_LIBRARY_PATH']}"
    assert got["bare"]["PATH"] == f"/opt/env/bin:{DEFAULT_PATH}"
    assert got["bare"]["LD_LIBRARY_PATH"] == "/opt/mpi/lib"  # no empty entry (the current directory)
