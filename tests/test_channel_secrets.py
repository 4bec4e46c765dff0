"""A channel URL with `${CONDA_TOKEN}`, locked and built for real, and the token nowhere.

The channel (tests/fixtures_build.py's runnable packages) is served only under
/t/<token>/ (403 elsewhere), as anaconda.org and Quetz serve private channels. The spec
names it as `http://127.0.0.1:PORT/t/${CONDA_TOKEN}`; `layerkit lock` and `layerkit build`
run as a user runs them, with CONDA_TOKEN exported, on a private dockerd (BuildKit 0.8).
Then the token's value is looked for in every artifact: lock, explicit file, rendered
context, hash input, build log, the image and its env-stage image (docker save: every layer
and the config), their history, and layerkit's and rattler's caches, and the BuildKit cache
mount that holds the downloaded packages.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import fixtures_channels as fx
import pytest
from fixtures_services import Services, container_output

from layerkit import api
from layerkit.build.client import BuildkitClient
from layerkit.build.context import BuildContext

pytestmark = pytest.mark.integration

TOKEN = "lk-tok-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[str]]]:
    root = tmp_path_factory.mktemp("tokensite")
    channel = fb.runnable_packages(root / "channel")
    index = fb.wheelhouse(root / "pypi")
    requests: list[str] = []
    chan_url, stop_chan = fx.serve_directory(channel, requests, token=TOKEN)
    pypi_url, stop_pypi = fx.serve_directory(index)
    try:
        yield chan_url, f"{pypi_url}/simple", requests
    finally:
        stop_chan()
        stop_pypi()


def _spec(folder: Path, site: tuple[str, str, list[str]], services: Services, repo: str) -> Path:
    chan_url, pypi_url, _ = site
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "layerkit.yaml"
    spec.write_text(
        "name: tokened\nversion: '1'\n"
        f"base:\n  image: {services.base_image}\n"
        "conda:\n"
        f"  channels: ['{chan_url}/t/${{CONDA_TOKEN}}/']\n"
        "  dependencies: [python=3.11, mlkit=1.0]\n"
        f"  installer: rattler\n  installer_image: {services.base_image}\n"
        f"mirrors:\n  pypi_index: '{pypi_url}'\n"
        f"registry:\n  address: {services.registry}\n  repository: {repo}\n"
        "steps:\n  - run: ['mlkit', '12']\n    stage: final\n"
    )
    return spec


def _lk(tmp: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONDA_TOKEN"}
    env.update(LAYERKIT_CACHE=str(tmp / "lk-cache"), RATTLER_CACHE_DIR=str(tmp / "rattler-cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    if token is not None:
        env["CONDA_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "layerkit", *args], capture_output=True, text=True, env=env, cwd=tmp
    )


def _files_with(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _saved(engine: docker.DockerClient, ref: str) -> bytes:
    """`docker save` of one image: every layer tar and the config, uncompressed."""
    return b"".join(engine.images.get(ref).save(named=True))


def test_a_tokenized_channel_locks_and_builds_without_the_token_anywhere(
    site: tuple[str, str, list[str]], services: Services, tmp_path: Path
) -> None:
    needle = TOKEN.encode()
    repo = f"tok-{uuid.uuid4().hex[:8]}"
    spec = _spec(tmp_path / "env", site, services, repo)
    addr = f"docker://{services.docker_host}"
    logs = []

    lock = _lk(tmp_path, "lock", str(spec))
    logs.append(lock.stdout + lock.stderr)
    assert lock.returncode == 0, lock.stderr
    lockfile = spec.with_name("layerkit.conda-lock.yml")
    explicit = spec.with_name("layerkit.linux-64.explicit.txt")
    assert "/t/${CONDA_TOKEN}/linux-64/mlkit-1.0-h0_0.tar.bz2" in lockfile.read_text()
    assert "/t/${CONDA_TOKEN}/linux-64/mlkit-1.0-h0_0.tar.bz2" in explicit.read_text()
    assert any(p.startswith(f"/t/{TOKEN}/") for p in site[2])  # the solver did use the token

    # The hash does not depend on the value (the lock's packages are hashed by checksum).
    hashes = {_lk(tmp_path, "hash", str(spec), token=t).stdout for t in (TOKEN, None, "other")}
    assert len(hashes) == 1 and len(hashes.pop().strip()) == 64
    assert TOKEN not in json.dumps(api.hash_spec(spec).parts)

    rendered = _lk(tmp_path, "render", str(spec), "-o", str(tmp_path / "ctx"))
    assert rendered.returncode == 0, rendered.stderr
    dockerfile = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert "--mount=type=secret,id=CONDA_TOKEN " in dockerfile
    assert "CONDA_TOKEN" not in "".join(ln for ln in dockerfile.splitlines() if ln.startswith(("ARG", "ENV")))

    before = len(site[2])
    built = _lk(
        tmp_path, "build", str(spec), "--addr", addr, "--network", "host", "--progress", "json", "--json"
    )
    logs.append(built.stdout + built.stderr)
    assert built.returncode == 0, built.stderr[-3000:]
    result = json.loads(built.stdout)
    assert "install_env: installed 3 packages" in built.stderr  # the RUN's output is in the log
    # The install RUN reached the channel with the token: its records come from the channel's
    # repodata, fetched afresh (a throwaway repodata cache), whatever the shared package cache
    # mount already holds from earlier builds on this builder (then no package is downloaded).
    during = site[2][before:]
    assert during and all(p.startswith(f"/t/{TOKEN}/") for p in during), during

    engine = docker.DockerClient(base_url=services.docker_host)
    images = [result["image"], *result.get("stages", {}).values()]
    assert any("-env:" in ref for ref in images), result  # the env stage image is pushed, so checked too
    for ref in images:
        engine.images.pull(ref)
        assert needle not in _saved(engine, ref), f"the token is in image {ref}"
        history = json.dumps(engine.api.history(ref)) + json.dumps(engine.images.get(ref).attrs)
        assert TOKEN not in history, f"the token is in the history or config of {ref}"
    meta = container_output(
        engine,
        result["image"],
        ["sh", "-c", "cat /opt/env/conda-meta/mlkit-*.json"],
        user="0",  # rattler writes conda-meta records 0600 (root's), whatever the channel
    ).decode()
    assert "/t/${CONDA_TOKEN}/linux-64/mlkit-1.0-h0_0.tar.bz2" in meta  # recorded as written

    for log in logs:
        assert TOKEN not in log
    for root in (spec.parent, tmp_path / "ctx", tmp_path / "lk-cache", tmp_path / "rattler-cache"):
        if root.exists():
            assert _files_with(root, needle) == [], root

    # The package cache mount (kept by the builder across builds) holds the packages, not the token.
    probe = (
        f"FROM {services.base_image}\n"
        f"RUN --mount=type=secret,id=probe --mount=type=cache,id=layerkit-rattler-pkgs-linux-64,"
        f"target=/c sh -c 'echo {uuid.uuid4().hex} && ls /c | grep -q mlkit-1.0 && test -s /run/secrets/probe "
        "&& ! grep -rqF -f /run/secrets/probe /c'\n"
    )
    with (
        BuildkitClient(addr) as client,
        BuildContext(client, {"Dockerfile": probe}, secrets={"probe": needle}) as ctx,
    ):
        client.solve(
            frontend="dockerfile.v0",
            frontend_attrs={"filename": "Dockerfile", "force-network-mode": "none"},
            frontend_inputs=ctx.inputs,
            session=ctx.session_id,
        )

    # A rebuild needs the variable, and says so; the value is in no cache key: another token
    # finds every step cached.
    missing = _lk(tmp_path, "build", str(spec), "--addr", addr, "--network", "host", "--force", token=None)
    assert missing.returncode == 2
    assert "${CONDA_TOKEN}, which is not set: export CONDA_TOKEN" in missing.stderr
    again = _lk(tmp_path, "build", str(spec), "--addr", addr, "--network", "host", "--force", token="other")
    assert again.returncode == 0, again.stderr[-3000:]
    counts = re.search(r"(\d+)/(\d+) steps cached", again.stderr)
    assert counts and counts[1] == counts[2] and int(counts[2]) > 0, again.stderr[-3000:]


def test_an_unlocked_build_solves_with_the_secret_and_masks_a_wrong_one(
    site: tuple[str, str, list[str]], services: Services, tmp_path: Path
) -> None:
    spec = _spec(tmp_path / "env", site, services, f"tok-{uuid.uuid4().hex[:8]}")
    addr = f"docker://{services.docker_host}"
    args = ("build", str(spec), "--addr", addr, "--network", "host", "--progress", "json", "--json")
    wrong = "lk-wrong-" + secrets.token_hex(8)
    failed = _lk(tmp_path, *args, token=wrong)
    assert failed.returncode == 3, failed.stderr[-3000:]
    assert "403 token required" in failed.stderr  # install_env's message, in the RUN's log
    assert wrong not in failed.stdout + failed.stderr
    built = _lk(tmp_path, *args)
    assert built.returncode == 0, built.stderr[-3000:]
    assert TOKEN not in built.stdout + built.stderr
    image = json.loads(built.stdout)["image"]
    engine = docker.DockerClient(base_url=services.docker_host)
    assert TOKEN.encode() not in _saved(engine, image)
    out = container_output(engine, image, ["mlkit", "3"]).decode()
    assert out.strip()


def test_a_secret_reaches_only_the_run_that_mounts_it(services: Services) -> None:
    """The session's Secrets service: BuildKit 0.8 in dockerd 20.10 takes RUN --mount=type=secret
    without a `# syntax` line; the value is in the RUN, not in the image or the next RUN."""
    value = secrets.token_hex(16)
    ref = f"{services.registry}/secretprobe:{uuid.uuid4().hex[:8]}"
    dockerfile = (
        f"FROM {services.base_image}\n"
        f'RUN --mount=type=secret,id=s1 test "$(cat /run/secrets/s1)" = {value[:4]}"$(echo {value[4:]})"\n'
        "RUN test ! -e /run/secrets/s1 && mkdir -p /out && ls -a /run > /out/run.txt\n"
        "RUN --mount=type=secret,id=absent test ! -s /run/secrets/absent\n"
    )
    with (
        BuildkitClient(f"docker://{services.docker_host}") as client,
        BuildContext(client, {"Dockerfile": dockerfile}, secrets={"s1": value.encode()}) as ctx,
    ):
        client.solve(
            frontend="dockerfile.v0",
            frontend_attrs={"filename": "Dockerfile", "force-network-mode": "none"},
            frontend_inputs=ctx.inputs,
            session=ctx.session_id,
            exporter="moby",
            exporter_attrs={"name": ref},
        )
    engine = docker.DockerClient(base_url=services.docker_host)
    assert value.encode() not in _saved(engine, ref)
