"""`layerkit build` on Docker 26 (Debian 13's docker.io, containerd image store): the engine of
conftest's `services`, which every e2e test runs on. These tests are about what it adds.

Its builder is BuildKit's containerd worker: layerkit's own gRPC client asks it which
exporters it has, then uses the image exporter with push=true (no Engine API push) and
exports the registry cache with mode=max. The air-gapped site is the one of test_build.py.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import pytest
from fixtures_build import build_spec as build
from fixtures_build import step_states
from fixtures_services import Services, container_output, empty_engine

from layerkit.build.builder import BuildResult
from layerkit.build.client import BuildkitClient
from layerkit.build.registry import MANIFEST_TYPES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


MANIFESTS = ", ".join(MANIFEST_TYPES)


def _manifest(services: Services, ref: str, method: str, reference: str | None = None) -> str | None:
    """The digest the registry answers for `ref` (HEAD), or after DELETE by `reference`."""
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    url = f"http://{services.registry}/v2/{repo}/manifests/{reference or tag}"
    req = urllib.request.Request(url, method=method, headers={"Accept": MANIFESTS})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return str(resp.headers.get("Docker-Content-Digest") or reference)
    except urllib.error.HTTPError:
        return None


def in_registry(services: Services, ref: str) -> bool:
    return _manifest(services, ref, "HEAD") is not None


def delete_from_registry(services: Services, ref: str) -> None:
    digest = _manifest(services, ref, "HEAD")
    assert digest and _manifest(services, ref, "DELETE", digest), ref
    assert not in_registry(services, ref), ref


def cache_refs(services: Services, repo: str, result: BuildResult) -> dict[str, str]:
    """Each target's registry cache: `<repo>-cache:<image|base|env>-<that target's hash>`."""
    hashes = {"image": result.hash} | {s: ref.rsplit(":", 1)[1] for s, ref in result.stages.items()}
    return {label: f"{services.registry}/{repo}-cache:{label}-{h}" for label, h in hashes.items()}


def _layers(services: Services, ref: str) -> dict[str, str]:
    """digest -> compression (the media type's tail: gzip, zstd) of the layers of an image (its
    manifest) or of a registry cache (an index whose entries are the layers and a cache config)."""
    raw = _get(services, ref)
    entries = raw.get("layers") or raw.get("manifests") or []
    kinds = {e["digest"]: e["mediaType"].rsplit("+", 1)[-1].rsplit(".", 1)[-1] for e in entries}
    return {d: k for d, k in kinds.items() if k in ("gzip", "zstd")}


def _get(services: Services, ref: str) -> dict[str, list[dict[str, str]]]:
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    url = f"http://{services.registry}/v2/{repo}/manifests/{tag}"
    req = urllib.request.Request(url, headers={"Accept": MANIFESTS})
    with urllib.request.urlopen(req, timeout=60) as resp:
        doc: dict[str, list[dict[str, str]]] = json.loads(resp.read())
    return doc


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
    # Cold whatever ran before on this engine: another module's builds share steps with this
    # one (the base stage's user, the env stage's WORKDIR).
    empty_engine(services.docker_host)
    cold, progress = build(spec, services)
    assert cold.action == "built" and cold.pushed, cold
    assert cold.digest and cold.digest.startswith("sha256:"), cold
    # The image exporter pushed: no Engine API push round trip was timed.
    assert not [k for k in cold.timings if k.startswith("push ")], cold.timings
    assert not any(step_states(progress).values()), step_states(progress)
    for ref in (cold.image, *cold.stages.values(), *cache_refs(services, repo, cold).values()):
        assert in_registry(services, ref), ref
    # The cache's own layers are zstd (the images' are rewritten, so none reuses them); the
    # base image's keep their gzip blobs, and every image layer is gzip, as any engine pulls.
    base = _layers(services, services.base_image)
    cache = _layers(services, cache_refs(services, repo, cold)["image"])
    assert base and set(base) < set(cache), (base, cache)
    assert {cache[d] for d in base} == {"gzip"}, cache
    assert {t for d, t in cache.items() if d not in base} == {"zstd"}, cache
    images = [_layers(services, ref) for ref in (cold.image, *cold.stages.values())]
    assert all(set(layers.values()) == {"gzip"} for layers in images), images
    client = docker.DockerClient(base_url=services.docker_host)
    ran = container_output(client, cold.image, ["mlkit", "12"])
    assert "fib(12) = 144" in ran.decode()

    empty_engine(services.docker_host)
    warm, progress = build(spec, services, force=True)
    states = step_states(progress)
    assert states and all(states.values()), states
    assert warm.hash == cold.hash and warm.pushed


def test_a_base_only_change_finds_the_env_steps_in_the_env_stage_registry_cache(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    first, _ = build(fb.site_spec(tmp_path / "a", site, services, repo=repo), services)
    caches = cache_refs(services, repo, first)
    assert set(caches) == {"image", "base", "env"}
    for ref in caches.values():
        assert in_registry(services, ref), ref
    # Only the base changes: a step of its own. The env stage keeps its hash, so its cache.
    own = f"steps:\n  - run: ['sh', '-c', 'echo {uuid.uuid4().hex} > /etc/base-marker']\n    stage: base\n"
    spec = fb.site_spec(tmp_path / "b", site, services, repo=repo, extra=own)
    # The env stage image goes too (its inline cache would also hold the env steps), and the
    # engine keeps nothing: the env stage's registry cache is the only place they can come from.
    delete_from_registry(services, first.stages["env"])
    empty_engine(services.docker_host)
    second, progress = build(spec, services)
    assert second.stages["base"] != first.stages["base"] and second.stages["env"] == first.stages["env"]
    states = step_states(progress)
    env = {n: c for n, c in states.items() if n.startswith("[env ")}
    assert len(env) >= 4 and all(env.values()), states
    assert not states[next(n for n in states if "base-marker" in n)], "the new base step ran"
    client = docker.DockerClient(base_url=services.docker_host)
    ran = container_output(client, second.image, ["mlkit", "12"])
    assert "fib(12) = 144" in ran.decode()
    # The env stage image was made again from its cache and pushed under the same name.
    assert in_registry(services, first.stages["env"])
