"""Compatibility smoke tests on Docker's classic image store: one build, one push, one skip, on
Debian 12's dockerd 20.10 (vfs, BuildKit v0.8) and on Docker 26 without the containerd store
(overlay2; what most Docker 24-27 installs run). The e2e suite runs on Docker 26 with the
containerd store (conftest `services`).

Their builders have only the moby exporter and inline cache: the image goes into the engine's
store and is pushed through the Engine API. 20.10's frontend refuses COPY --link, so layerkit
drops the flag there; Docker 26's keeps it. The air-gapped site is the one of test_build.py.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import pytest
from fixtures_build import build_spec as build
from fixtures_services import Services

from layerkit.build.client import BuildkitClient
from layerkit.build.registry import ImageRef, RegistryClient
from layerkit.build.runner import RunOptions, run_in_image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


def test_docker20_builder_has_only_the_moby_exporter_and_inline_cache(services20: Services) -> None:
    with BuildkitClient(f"docker://{services20.docker_host}") as client:
        caps = client.capabilities()
        info = client.info()
    assert info is None  # BuildKit 0.8 has no Info RPC: info() degrades, it does not raise
    assert caps.embedded_in_docker and not caps.pushes_images, caps
    assert "moby" in caps.exporters and "image" not in caps.exporters
    assert "registry" not in caps.cache_exports and "registry" in caps.cache_imports


@pytest.fixture(params=["services20", "services26_classic"])
def classic(request: pytest.FixtureRequest) -> Services:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_docker26_classic_store_has_the_moby_exporter_and_takes_copy_link(
    services26_classic: Services,
) -> None:
    with BuildkitClient(f"docker://{services26_classic.docker_host}") as client:
        caps = client.capabilities()
    assert caps.embedded_in_docker and not caps.pushes_images and caps.copy_link, caps
    assert "moby" in caps.exporters and "registry" not in caps.cache_exports


def test_build_push_and_skip_by_hash_on_the_classic_store(
    tmp_path: Path, site: fb.Site, classic: Services
) -> None:
    spec = fb.site_spec(tmp_path, site, classic, repo=f"t/{uuid.uuid4().hex[:8]}")
    built, progress = build(spec, classic)
    assert built.action == "built" and built.pushed, built
    with BuildkitClient(f"docker://{classic.docker_host}") as client:
        takes_link = client.capabilities().copy_link
    linked = [s.name for s in progress.steps.values() if "COPY --link" in s.name]
    assert bool(linked) == takes_link, (takes_link, linked)  # the flag kept, or dropped, as asked
    head = RegistryClient(lambda host: None).head_manifest(ImageRef.parse(built.image))
    assert head is not None and built.digest == head.digest, (built, head)
    for ref in built.stages.values():
        assert RegistryClient(lambda host: None).head_manifest(ImageRef.parse(ref)) is not None, ref
    # The engine pushed it (Engine API): it records the registry's digest for its image.
    engine = docker.DockerClient(base_url=classic.docker_host)
    repo = built.image.rsplit(":", 1)[0]
    assert f"{repo}@{head.digest}" in engine.images.get(built.image).attrs["RepoDigests"]

    # Run what the registry holds: the local copy goes, `layerkit run` pulls it back.
    engine.images.remove(built.image, force=True)
    out, err = io.BytesIO(), io.BytesIO()
    opts = RunOptions(command=("mlkit", "12"), source=tmp_path, network="none")
    code = run_in_image(
        classic.docker_host, built.image, opts, workdir="/mnt/src", gpu=False,
        credentials=lambda host: None, stdout=out, stderr=err,
    )  # fmt: skip
    assert code == 0, err.getvalue()
    assert out.getvalue() == b"mlkit 1.0 on corelib 1.5: fib(12) = 144\n"

    # The same spec again: skipped by hash, from the registry; a dead BuildKit address proves
    # no solve was attempted.
    dead = dataclasses.replace(classic, docker_host=f"unix:///tmp/{uuid.uuid4().hex}.sock")
    again, progress = build(spec, dead)
    assert again.action == "found" and again.source == built.image, again
    assert again.digest == built.digest and again.total_steps == 0 and not progress.steps
