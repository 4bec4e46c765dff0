"""Updates ship as deltas (issue 18 §2), on dockerd 26 and a real registry: a locked env with
a big CUDA-named package is pushed as a layer for that package's group and one for the rest;
after a one-package update of the rest, the registry's manifest has the same big layer (the
same blob, not sent again) and a new rest layer, and the image's /opt/env is the one a single
env layer gives (on dockerd 20.10 too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import pytest
from fixtures_build import build_spec as build
from fixtures_services import Services, container_output

pytestmark = pytest.mark.integration

BIG_MB = 4
DEPS = (*fb.DEPS, "libcublas=12.1.0")
# Every entry of /opt/env with its type, mode, owner and link target, then each file's sha256.
LISTING = [
    "sh",
    "-c",
    "cd /opt/env && find . -printf '%y %m %U:%G %p %l\\n' | LC_ALL=C sort"
    " && find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    extra = fb.delta_packages(BIG_MB)
    with fb.airgap_site(tmp_path_factory.mktemp("site"), extra_packages=extra) as s:
        yield s


def _spec(folder: Path, site: fb.Site, services: Services, repo: str, tiny: str, layers: bool = True) -> Path:
    spec = fb.site_spec(folder, site, services, repo=repo, deps=(*DEPS, f"tinykit={tiny}"), lock=False)
    if not layers:
        spec.write_text(spec.read_text().replace("conda:\n", "conda:\n  layers: false\n", 1))
    fb.lock_spec(spec)
    return spec


def test_a_one_package_update_sends_only_the_rest_layer_and_keeps_the_big_one(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    first, _ = build(_spec(tmp_path / "a", site, services, repo, "1.0"), services)
    second, _ = build(_spec(tmp_path / "b", site, services, repo, "1.1"), services)
    assert first.pushed and second.pushed and first.hash != second.hash
    a, b = (fb.image_layers(services.registry, r.image) for r in (first, second))
    # The libcublas group's layer: its random bytes do not compress (the base's layer is bigger).
    big = [layer for layer in a if abs(layer[1] - (BIG_MB << 20)) < (BIG_MB << 20) // 20]
    assert len(big) == 1, a
    assert big[0] in b and len(a) == len(b)
    # Only the rest layer is new: same position, another blob, a small one.
    new = [layer for layer in b if layer not in a]
    assert len(new) == 1 and new[0][1] < (BIG_MB << 20) // 4, (a, b)
    assert b.index(new[0]) == b.index(big[0]) + 1  # the rest follows the groups
    client = docker.DockerClient(base_url=services.docker_host)
    try:
        out = container_output(
            client, second.image, ["sh", "-c", "cat /opt/env/share/tinykit/VERSION && mlkit 5"]
        )
    finally:
        client.close()
    assert out.decode().splitlines() == ["1.1", "mlkit 1.0 on corelib 1.5: fib(5) = 5"]


@pytest.fixture(params=["services", "services20"])
def engine(request: pytest.FixtureRequest) -> Services:
    """Docker 26 (COPY --link), and Debian 12's dockerd 20.10, whose frontend takes no --link:
    unlinked, the copies lay the groups and the rest over each other the same way."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_the_split_env_is_the_single_layer_env(tmp_path: Path, site: fb.Site, engine: Services) -> None:
    services = engine
    repo = f"t/{uuid.uuid4().hex[:8]}"
    split, _ = build(_spec(tmp_path / "split", site, services, repo, "1.0"), services)
    single, _ = build(_spec(tmp_path / "single", site, services, repo, "1.0", layers=False), services)
    assert split.hash != single.hash
    layers = {r.image: fb.image_layers(services.registry, r.image) for r in (split, single)}
    assert len(layers[split.image]) == len(layers[single.image]) + 1  # the libcublas group
    client = docker.DockerClient(base_url=services.docker_host)
    try:
        listings = [container_output(client, r.image, LISTING).decode() for r in (split, single)]
    finally:
        client.close()
    assert "./lib/libcublas.so.12" in listings[0] and "./conda-meta/libcublas-12.1.0-h0_0.json" in listings[0]
    assert listings[0] == listings[1]
