"""`plan --json` and `build` cannot disagree: for each registry state, what plan prints is the
decision build then reports it carried out (its `decision`), and what build really did (the
solves it ran, the caches it imported and exported, what it pushed or copied, what the
registry holds afterwards) is what that decision says. Real dockerd 26, real registries."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import fixtures_build as fb
import jsonschema
import pytest
from fixtures_services import Services, refused_port, registry

from layerkit.build.registry import MANIFEST_TYPES, ImageRef, RegistryClient

pytestmark = pytest.mark.integration

SCHEMA = json.loads((resources.files("layerkit") / "schemas" / "plan-1.schema.json").read_text())
DECISION = ("action", "found_at", "image", "tags", "registry", "push", "stage_images", "cache_from",
            "registry_caches", "cache_exports", "copies", "found_digest")  # fmt: skip
EXECUTED = {"found": "found", "copy": "copied", "build": "built", "unchecked": "built"}

Cli = Callable[..., object]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


def plan(cli: Cli, spec: Path, services: Services, *extra: str) -> dict[str, object]:
    r = cli("plan", spec, "--json", "--addr", f"docker://{services.docker_host}", *extra)
    assert r.code == 0, r.err  # type: ignore[attr-defined]
    doc = json.loads(r.out)  # type: ignore[attr-defined]
    jsonschema.validate(doc, SCHEMA)
    (env,) = doc["environments"]
    return dict(env)


def plan_then_build(cli: Cli, spec: Path, services: Services) -> tuple[dict[str, object], dict[str, object]]:
    """Plan, then build the same state; assert they agree; both documents."""
    env = plan(cli, spec, services)
    r = cli("build", spec, "--json", "--addr", f"docker://{services.docker_host}", "--network", "host",
            "--progress", "quiet")  # fmt: skip
    assert r.code == 0, r.err  # type: ignore[attr-defined]
    doc = json.loads(r.out)  # type: ignore[attr-defined]
    assert doc["decision"] == {k: env[k] for k in DECISION}, (env, doc)
    assert doc["action"] == EXECUTED[str(env["action"])], doc
    stages = env["stage_images"]
    assert isinstance(stages, list)
    if env["action"] in ("found", "copy"):
        assert doc["solved"] == [] and doc["source"] == env["found_at"]
        assert doc["image"] == (env["image"] if env["action"] == "copy" else env["found_at"])
        assert doc["pushed"] is bool(env["copies"])
    else:
        solves = ["image", *(s["stage"] for s in stages if s["build"])]
        assert doc["solved"] == solves + (["publish"] if env["push"] else []), doc
        assert doc["pushed"] is env["push"] and doc["image"] == env["image"]
        assert doc["cache_imports"] == sorted({*env["cache_from"], *env["registry_caches"]})  # type: ignore[misc]
        assert doc["cache_exports"] == sorted(env["cache_exports"])  # type: ignore[call-overload]
    if env["push"]:  # whatever build put in the registry is complete: the next plan finds it
        assert all(head(s["ref"]) for s in stages), stages
        again = plan(cli, spec, services)
        assert (again["action"], again["found_at"]) == ("found", env["image"]), again
    return env, doc


def head(ref: str) -> bool:
    return RegistryClient().head_manifest(ImageRef.parse(ref)) is not None


def delete(ref: str) -> None:
    """Remove an image from the (test) registry, as a lost or pruned push would leave it."""
    image = ImageRef.parse(ref)
    info = RegistryClient().head_manifest(image)
    assert info is not None, ref
    url = f"http://{image.registry}/v2/{image.repository}/manifests/{info.digest}"
    req = urllib.request.Request(url, method="DELETE", headers={"Accept": ", ".join(MANIFEST_TYPES)})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 202, resp.status
    assert not head(ref)


def spec_in(tmp: Path, site: fb.Site, services: Services, repo: str, **kw: str) -> Path:
    return fb.site_spec(tmp / uuid.uuid4().hex[:8], site, services, repo=repo, **kw)


def test_plan_and_build_agree_in_every_registry_state(
    cli: Cli, tmp_path: Path, site: fb.Site, services: Services
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    spec = spec_in(tmp_path, site, services, repo)

    # Offline the answer is open; online, with nothing in the registry: build everything.
    offline = plan(cli, spec, services, "--offline")
    assert offline["action"] == "unchecked" and {s["exists"] for s in offline["stage_images"]} == {None}  # type: ignore[union-attr]
    env, doc = plan_then_build(cli, spec, services)
    assert env["action"] == "build" and doc["solved"] == ["image", "base", "env", "publish"]
    assert [s["build"] for s in env["stage_images"]] == [True, True]  # type: ignore[union-attr]
    image = str(env["image"])

    # The image and its stage images in the workspace registry: found.
    env, doc = plan_then_build(cli, spec, services)
    assert env["action"] == "found" and doc["action"] == "found"

    # Stage images (and caches) there, the image missing: only the image is solved and published.
    delete(image)
    env, doc = plan_then_build(cli, spec, services)
    assert env["action"] == "build" and doc["solved"] == ["image", "publish"]
    assert [s["exists"] for s in env["stage_images"]] == [True, True]  # type: ignore[union-attr]

    # The image there without its env stage image: not found, but built again to push it.
    env_stage = env["stage_images"][1]["ref"]  # type: ignore[index]
    delete(env_stage)
    env, doc = plan_then_build(cli, spec, services)
    assert env["action"] == "build" and doc["solved"] == ["image", "env", "publish"]
    assert image in env["cache_from"]  # type: ignore[operator]
    assert head(env_stage)

    # Only in a global (read-only) registry: copied, stage images first, then found there.
    with registry(tmp_path / "ws") as ws:
        copy_spec = spec_in(tmp_path, site, services, repo, registry=ws.address,
                            extra=f"  global_registries: [{services.registry}]\n")  # fmt: skip
        env, doc = plan_then_build(cli, copy_spec, services)
        assert env["action"] == "copy" and env["found_at"] == image
        assert [c["to"] for c in env["copies"]][-1] == env["image"]  # type: ignore[union-attr]

    # The workspace registry down: the global image is used as it is (plan used to say copy).
    dead = f"127.0.0.1:{refused_port()}"
    down_spec = spec_in(tmp_path, site, services, repo, registry=dead,
                        extra=f"  global_registries: [{services.registry}]\n")  # fmt: skip
    env, doc = plan_then_build(cli, down_spec, services)
    assert env["action"] == "found" and doc["image"] == image and env["copies"] == []

    # Down and found nowhere: unchecked, built into the engine, nothing pushed.
    env, doc = plan_then_build(cli, spec_in(tmp_path, site, services, repo, registry=dead), services)
    assert env["action"] == "unchecked" and doc["solved"] == ["image"] and doc["pushed"] is False
