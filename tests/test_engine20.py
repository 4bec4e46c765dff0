"""Compatibility smoke test on Debian 12's dockerd 20.10 (classic image store on vfs, BuildKit
v0.8): one build, one push, one skip. The e2e suite runs on Docker 26 (conftest `services`).

Its builder has only the moby exporter and inline cache: the image goes into the engine's store
and is pushed through the Engine API. The air-gapped site is the one of test_build.py.
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


def test_build_push_and_skip_by_hash_on_dockerd_20(
    tmp_path: Path, site: fb.Site, services20: Services
) -> None:
    spec = fb.site_spec(tmp_path, site, services20, repo=f"t/{uuid.uuid4().hex[:8]}")
    built, _ = build(spec, services20)
    assert built.action == "built" and built.pushed, built
    head = RegistryClient(lambda host: None).head_manifest(ImageRef.parse(built.image))
    assert head is not None and built.digest == head.digest, (built, head)
    for ref in built.stages.values():
        assert RegistryClient(lambda host: None).head_manifest(ImageRef.parse(ref)) is not None, ref
    # The engine pushed it (Engine API): it records the registry's digest for its image.
    engine = docker.DockerClient(base_url=services20.docker_host)
    repo = built.image.rsplit(":", 1)[0]
    assert f"{repo}@{head.digest}" in engine.images.get(built.image).attrs["RepoDigests"]

    # Run what the registry holds: the local copy goes, `layerkit run` pulls it back.
    engine.images.remove(built.image, force=True)
    out, err = io.BytesIO(), io.BytesIO()
    opts = RunOptions(command=("mlkit", "12"), source=tmp_path, network="none")
    code = run_in_image(
        services20.docker_host, built.image, opts, workdir="/mnt/src", gpu=False,
        credentials=lambda host: None, stdout=out, stderr=err,
    )  # fmt: skip
    assert code == 0, err.getvalue()
    assert out.getvalue() == b"mlkit 1.0 on corelib 1.5: fib(12) = 144\n"

    # The same spec again: skipped by hash, from the registry; a dead BuildKit address proves
    # no solve was attempted.
    dead = dataclasses.replace(services20, docker_host=f"unix:///tmp/{uuid.uuid4().hex}.sock")
    again, progress = build(spec, dead)
    assert again.action == "found" and again.source == built.image, again
    assert again.digest == built.digest and again.total_steps == 0 and not progress.steps
