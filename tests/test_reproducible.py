"""Same spec and lock, same image digest (issue 18 §1) on Docker 26 (containerd image store):
BuildKit's image exporter with SOURCE_DATE_EPOCH and rewrite-timestamp, through layerkit's client.

Each build is cold: the engine keeps no image and no BuildKit cache (empty_engine), and the
second build pushes to another repository, so no registry cache of the first can feed it (the
repository is not in the hash or the image, only in its name).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import pytest
from fixtures_build import build_spec as build
from fixtures_build import step_states
from fixtures_services import Services, container_output, empty_engine

from layerkit import api
from layerkit.build.builder import BuildOptions, BuildResult
from layerkit.build.progress import Progress

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


def _cold_build(spec: Path, services: Services, repo: str) -> BuildResult:
    site_yaml = spec.parent / "site.yaml"
    site_yaml.write_text(re.sub(r"repository: \S+", f"repository: {repo}", site_yaml.read_text()))
    empty_engine(services.docker_host)
    result, progress = build(spec, services)
    assert result.action == "built", result
    states = step_states(progress)
    assert states and not any(states.values()), states  # every step ran: nothing was cached
    return result


def test_the_demo_environment_builds_cold_twice_to_the_same_digests_and_verifies(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    """examples/demo itself (what `make demo` builds: a team layer, a runtime user, a final
    step), on this run's site, as scripts/demo.py writes its site.yaml."""
    spec_dir = tmp_path / "demo"
    shutil.copytree(ROOT / "examples" / "demo", spec_dir)
    layer = fb.site_layer(site, services.base_image, services.registry)
    (spec_dir / "site.yaml").write_text(layer + "  repository: t/demo\n")
    spec = spec_dir / "layerkit.yaml"
    fb.lock_spec(spec)
    first = _cold_build(spec, services, f"t/{uuid.uuid4().hex[:8]}")
    second = _cold_build(spec, services, f"t/{uuid.uuid4().hex[:8]}")
    assert first.pushed and second.pushed and first.hash == second.hash
    assert first.digest and first.digest.startswith("sha256:"), first
    assert (second.digest, second.stage_digests) == (first.digest, first.stage_digests)
    assert set(first.stage_digests) == {"base", "env"}, first.stage_digests
    assert second.to_json()["platform"] == "linux-64" and second.to_json()["replaced_digest"] is None

    # The env record holds the digest the build pushed, per platform; `layerkit verify`
    # rebuilds it with no cache at all (the engine emptied again) and finds the same digest.
    registered = api.env_register(spec)
    assert registered.record.digests == {"linux-64": second.digest} and registered.record.index is None
    empty_engine(services.docker_host)
    progress = Progress("quiet")
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="host")
    result = api.verify(spec, options=opts, progress=progress)
    (check,) = result.platforms
    assert result.ok and not result.findings, [str(f) for f in result.findings]
    assert result.recorded == second.digest == result.rebuilt == check.rebuilt
    assert check.rebuilt_image == f"{second.image.rsplit(':', 1)[0]}-verify:{second.hash}"
    states = step_states(progress, "verify linux-64")
    assert states and not any(states.values()), states  # every step ran again


def test_two_cold_registry_less_builds_give_the_same_digest_and_the_image_runs(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    # dockerd's moby exporter cannot rewrite timestamps (it unpacks): the image exporter
    # stores the image in dockerd's containerd namespace instead, where `docker run` finds it.
    spec = fb.site_spec(tmp_path, site, services, repo="t/local")
    site_yaml = spec.parent / "site.yaml"
    site_yaml.write_text(re.sub(r"registry:\n  address: \S+\n", "registry:\n", site_yaml.read_text()))
    digests = []
    for repo in ("t/local-a", "t/local-b"):
        result = _cold_build(spec, services, repo)
        assert not result.pushed and result.image == f"{repo}:{result.hash}", result
        ran = container_output(
            docker.DockerClient(base_url=services.docker_host), result.image, ["mlkit", "12"]
        )
        assert "fib(12) = 144" in ran.decode()
        digests.append(result.digest)
    assert digests[0] and digests[0].startswith("sha256:") and digests[0] == digests[1], digests
