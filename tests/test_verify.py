"""`layerkit verify` on Docker 26 (containerd image store) and a real registry (issue 18): a
step that writes the date is caught, naming its layer and the file it wrote, and a build that
does not reproduce its hash tag's image says so; nothing pushed is exit 3.

Where a rebuild does verify: tests/test_reproducible.py (the demo environment, one platform)
and tests/test_multiplatform_e2e.py (two platforms and the index; Docker 20.10's refusal).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import fixtures_build as fb
import pytest
from fixtures_build import build_spec as build
from fixtures_services import Services, empty_engine

from layerkit import api
from layerkit.build.registry import MANIFEST_TYPES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


def _verify_cli(spec: Path, services: Services, *extra: str) -> tuple[int, dict[str, object], str]:
    """`layerkit verify --json SPEC`: exit code, the report, stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "layerkit", "verify", "--json", "--progress", "quiet",
         "--addr", f"docker://{services.docker_host}", "--network", "host", *extra, str(spec)],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _delete(services: Services, ref: str) -> None:
    """Delete the manifest `ref` (localhost:PORT/repo:tag) names from the test registry."""
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    base = f"http://{services.registry}/v2/{repo}/manifests"
    accept = {"Accept": ", ".join(MANIFEST_TYPES)}
    head = urllib.request.Request(f"{base}/{tag}", method="HEAD", headers=accept)
    with urllib.request.urlopen(head, timeout=60) as resp:
        digest = resp.headers["Docker-Content-Digest"]
    urllib.request.urlopen(urllib.request.Request(f"{base}/{digest}", method="DELETE"), timeout=60).close()


def test_a_step_writing_the_date_is_caught_with_its_layer_and_file(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    spec = fb.site_spec(tmp_path, site, services, repo=f"t/{uuid.uuid4().hex[:8]}", lock=False)
    text = spec.read_text().replace(
        "steps:\n", "steps:\n  - run: 'date +%s%N > /built-at'\n    stage: base\n", 1
    )
    spec.write_text(text)
    fb.lock_spec(spec)
    built, _ = build(spec, services)
    assert built.action == "built" and built.pushed

    code, report, stderr = _verify_cli(spec, services)
    assert code == 1, stderr
    assert report["recorded_digest"] == built.digest != report["rebuilt_digest"]
    (finding,) = report["findings"]  # type: ignore[misc]
    assert finding["path"] == "/built-at" and "content" in finding["differs"], finding
    assert "date +%s%N > /built-at" in finding["instruction"], finding
    # The layer is the step's: its index among the image's layers, the config's history says.
    assert isinstance(finding["layer"], int) and finding["layer"] >= 1
    # One line per finding on stderr names the platform, the layer, its instruction and the file.
    line = next(ln for ln in stderr.splitlines() if ln.startswith("linux-64: layer "))
    assert f"layer {finding['layer']} (" in line and "date +%s%N > /built-at" in line
    assert "/built-at: content" in line, line

    # A build that does not reproduce the image under its hash says so: no cache left anywhere
    # (engine emptied, registry caches deleted), --force builds the date step again.
    api.env_register(spec)
    for ref in built.cache_exports:
        _delete(services, ref)
    empty_engine(services.docker_host)
    again, _ = build(spec, services, force=True)
    assert again.action == "built" and again.pushed and again.digest != built.digest
    assert again.replaced_digest == built.digest and again.to_json()["replaced_digest"] == built.digest
    assert any(built.digest in w and "did not reproduce" in w for w in again.warnings), again.warnings
    # ... and so does the env record, which holds the first build's digest.
    assert any("records" in w and built.digest in w for w in again.warnings), again.warnings


def test_nothing_pushed_is_exit_3_in_one_line(tmp_path: Path, site: fb.Site, services: Services) -> None:
    spec = fb.site_spec(tmp_path, site, services, repo=f"t/{uuid.uuid4().hex[:8]}")
    proc = subprocess.run(
        [sys.executable, "-m", "layerkit", "verify", "--addr", f"docker://{services.docker_host}", str(spec)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 3 and proc.stdout == "", proc
    (line,) = proc.stderr.strip().splitlines()
    ref = f"{services.registry}/{spec.parent.joinpath('site.yaml').read_text().split('repository: ')[1].split()[0]}"
    assert "nothing to verify" in line and ref in line and "is not in the registry" in line, line
