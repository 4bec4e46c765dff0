"""`layerkit build` on Docker 26 (Debian 13's docker.io, containerd image store): the engine of
conftest's `services`, which every e2e test runs on. These tests are about what it adds.

Its builder is BuildKit's containerd worker: layerkit's own gRPC client asks it which
exporters it has, then uses the image exporter with push=true (no Engine API push) and
exports the registry cache with mode=max. The air-gapped site is the one of test_build.py.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import pytest
from fixtures_build import build_spec as build
from fixtures_services import Services

from layerkit.build.client import BuildkitClient
from layerkit.build.progress import Progress, is_build_step

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


def step_states(progress: Progress) -> dict[str, bool]:
    return {s.name: s.cached for s in progress.steps.values() if s.phase == "image" and is_build_step(s.name)}


def in_registry(services: Services, ref: str) -> bool:
    repo_tag = ref.split("/", 1)[1]
    repo, tag = repo_tag.rsplit(":", 1)
    req = urllib.request.Request(
        f"http://{services.registry}/v2/{repo}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
                 "application/vnd.docker.distribution.manifest.v2+json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status) == 200
    except urllib.error.HTTPError:
        return False


def empty_engine(services: Services) -> None:
    """No image and no BuildKit cache record left in the engine (other tests share it)."""
    client = docker.DockerClient(base_url=services.docker_host)
    for image in client.images.list():
        client.images.remove(image.id, force=True)
    client.api.prune_builds(all=True)


def test_docker26_builder_pushes_images_and_registry_cache(services: Services) -> None:
    with BuildkitClient(f"docker://{services.docker_host}") as client:
        caps = client.capabilities()
    assert caps.embedded_in_docker
    assert caps.pushes_images, caps
    assert {"image", "moby"} <= caps.exporters and "registry" in caps.cache_exports


def test_build_pushes_through_the_image_exporter_then_rebuilds_from_the_registry_cache(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    spec = fb.site_spec(tmp_path, site, services, repo=repo)
    empty_engine(services)  # a cold build: nothing of earlier tests' builds to reuse
    cold, progress = build(spec, services)
    assert cold.action == "built" and cold.pushed, cold
    assert cold.digest and cold.digest.startswith("sha256:"), cold
    # The image exporter pushed: no Engine API push round trip was timed.
    assert not [k for k in cold.timings if k.startswith("push ")], cold.timings
    assert not any(step_states(progress).values()), step_states(progress)
    base_hash = cold.stages["base"].rsplit(":", 1)[1]
    for ref in (cold.image, *cold.stages.values(), f"{services.registry}/{repo}-cache:{base_hash}"):
        assert in_registry(services, ref), ref
    client = docker.DockerClient(base_url=services.docker_host)
    ran = client.containers.run(cold.image, ["mlkit", "12"], remove=True, network_mode="none")
    assert "fib(12) = 144" in bytes(ran).decode()

    empty_engine(services)  # the registry cache is all that is left
    warm, progress = build(spec, services, force=True)
    states = step_states(progress)
    assert states and all(states.values()), states
    assert warm.hash == cold.hash and warm.pushed
