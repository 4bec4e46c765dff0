"""Issue 18 §1 across sites: the hash leaves the site's mirrors out (hashing/canonical.py), so
two sites with other mirrors of one channel and one PyPI build under the same hash; the image
must not record which mirror it came from either (templates/canonical_urls.py), so they push
the same image. Here the two mirrors are two servers over the same directories, each site
locking through its own, each build cold (empty engine, its own repository)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import fixtures_channels as fx
import fixtures_pip as fp
import pytest
from fixtures_services import Services, container_output, empty_engine

from layerkit.build.builder import BuildResult

pytestmark = pytest.mark.integration

SPEC = (
    "name: mirrored\nversion: '1'\nextends: [site.yaml]\n"
    "conda:\n  dependencies: [python=3.11, pip]\n  pip: [tinywheel==1.0]\n"
)
# What the image holds: each conda record's url and channel, and what pip reports.
PROBE = (
    "import glob, json, subprocess\n"
    "recs = [json.load(open(p)) for p in sorted(glob.glob('/opt/env/conda-meta/*.json'))]\n"
    "print(json.dumps({'records': [[r['url'], r['channel']] for r in recs],\n"
    "  'freeze': subprocess.run(['/opt/env/bin/python', '-m', 'pip', 'freeze'], capture_output=True, text=True, check=True).stdout,\n"
    "  'direct': glob.glob('/opt/env/lib/python3.11/site-packages/*.dist-info/direct_url.json')}))\n"
)


@pytest.fixture
def two_mirrors(tmp_path: Path) -> Iterator[list[fb.Site]]:
    channel = fp.pip_channel(tmp_path / "channel")
    index = fb.wheelhouse(tmp_path / "pypi")
    fp.publish_wheel(index, uuid.uuid4().hex)  # this run's payload: no engine cache holds it
    stops = []
    sites = []
    try:
        for _ in range(2):
            chan_url, stop_chan = fx.serve_directory(channel)
            pypi_url, stop_pypi = fx.serve_directory(index)
            stops += [stop_chan, stop_pypi]
            sites.append(fb.Site(chan_url, f"{pypi_url}/simple"))
        yield sites
    finally:
        for stop in stops:
            stop()


def _cold_build(folder: Path, site: fb.Site, services: Services) -> BuildResult:
    folder.mkdir()
    layer = fb.site_layer(site, services.base_image, services.registry)
    (folder / "site.yaml").write_text(layer + f"  repository: t/{uuid.uuid4().hex[:8]}\n")
    spec = folder / "layerkit.yaml"
    spec.write_text(SPEC)
    fb.lock_spec(spec)  # through this site's mirrors: the lock names its URLs
    assert site.channel_url in (folder / "layerkit.conda-lock.yml").read_text()
    empty_engine(services.docker_host)
    result, _ = fb.build_spec(spec, services)
    assert result.action == "built" and result.pushed, result
    return result


def test_two_sites_with_other_mirrors_push_the_same_image(
    tmp_path: Path, two_mirrors: list[fb.Site], services: Services
) -> None:
    first, second = (_cold_build(tmp_path / f"site{i}", s, services) for i, s in enumerate(two_mirrors))
    assert first.hash == second.hash
    assert first.digest and first.digest.startswith("sha256:"), first
    assert second.digest == first.digest
    # The base stage image too. Not the env stage image: it keeps the site's context files in
    # its COPY layers (the lock names the mirror's URLs) and its RUN lines the --index-url.
    assert second.stage_digests["base"] == first.stage_digests["base"]
    client = docker.DockerClient(base_url=services.docker_host)
    seen = json.loads(container_output(client, second.image, ["python3", "-c", PROBE]))
    assert seen["records"], seen
    for url, channel in seen["records"]:  # the canonical channel, not either mirror
        assert (
            url.startswith("https://conda.anaconda.org/demo/")
            and channel == "https://conda.anaconda.org/demo/"
        )
    # pip still works in the env, and reports the locked wheel as from an index.
    assert seen["freeze"].splitlines() == ["tinywheel==1.0"], seen
    assert seen["direct"] == [], seen
