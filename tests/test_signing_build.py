"""`layerkit build --sign` / `--require-signature` and the SBOM end to end (issue 15 §5): real
dockerd 26 (conftest `services`), its loopback registry, the air-gapped site, Debian 13's
cosign 2.5 with keys made here. Sign, verify, reuse; tamper (another image under the hash
tag) and a wrong key: no reuse, rebuilt, a warning; the SBOM attached to the image holds every
locked package with its checksums, and `env show --sbom` prints it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fixtures_build as fb
import pytest
from fixtures_build import build_spec, site_spec
from fixtures_services import Services
from test_signing import cosign_keys

from layerkit.build.builder import BuildResult
from layerkit.build.registry import ImageRef, RegistryClient
from layerkit.build.signing import verify
from layerkit.envs import sbom
from layerkit.envs.oci import OciClient
from layerkit.lock.unified import read_unified

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Signed:
    spec: Path
    first: BuildResult  # the build with --sign
    key: str
    pub: str
    other_pub: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, site: fb.Site, services: Services) -> Iterator[Signed]:
    """One environment built, pushed and signed (key a); every test leaves it signed so."""
    root = tmp_path_factory.mktemp("signed")
    with cosign_keys(root) as (k, mp):
        mp.setenv("LAYERKIT_CACHE", str(root / "cache"))
        spec = site_spec(root / "env", site, services, repo=f"sig/{uuid.uuid4().hex[:8]}")
        result, _ = build_spec(spec, services, sign_key=k.key)
        yield Signed(spec, result, k.key, k.pub, k.other_pub)


def _by_digest(ref: str) -> ImageRef:
    image = ImageRef.parse(ref)
    info = RegistryClient().head_manifest(image)
    assert info is not None, ref
    return ImageRef(image.registry, image.repository, None, info.digest)


def test_build_sign_signs_the_image_and_its_stage_images(signed: Signed) -> None:
    r = signed.first
    assert r.action == "built" and r.pushed and set(r.stages) == {"base", "env"}
    for ref in [r.image, *r.stages.values()]:
        assert verify(_by_digest(ref), signed.pub, None).ok, ref
        assert verify(_by_digest(ref), signed.other_pub, None).reason.startswith("bad signature"), ref


def test_a_verified_image_is_found(signed: Signed, services: Services) -> None:
    again, _ = build_spec(signed.spec, services, require_signature=signed.pub)
    assert again.action == "found" and again.image == signed.first.image
    assert again.warnings == []


def test_a_wrong_key_means_no_reuse(signed: Signed, services: Services) -> None:
    again, _ = build_spec(signed.spec, services, require_signature=signed.other_pub, sign_key=signed.key)
    assert again.action == "built" and again.pushed
    # The image and, as cache sources, both stage images and the earlier build under the
    # name-version tag: each refused once, saying why.
    refused = sorted(
        w.split(": ")[1].removeprefix("not reusing ") for w in again.warnings if "not reusing" in w
    )
    assert again.decision is not None and len(again.decision.tags) == 1  # demo-train-1
    assert refused == sorted([again.image, *signed.first.stages.values(), *again.decision.tags])
    assert all(": bad signature (" in w for w in again.warnings if "not reusing" in w)
    assert verify(_by_digest(again.image), signed.pub, None).ok  # signed anew (key a)


def test_an_unsigned_image_under_the_hash_tag_is_rebuilt(signed: Signed, services: Services) -> None:
    """Tamper: another image (the base, unsigned) pushed under the environment's hash tag."""
    client = RegistryClient()
    ref = ImageRef.parse(signed.first.image)
    client.copy(ImageRef.parse(services.base_image), ref)
    tampered = _by_digest(signed.first.image)
    assert verify(tampered, signed.pub, None).reason == "unsigned"
    plain, _ = build_spec(signed.spec, services)  # without the gate the tag is trusted
    assert plain.action == "found"
    again, _ = build_spec(signed.spec, services, require_signature=signed.pub, sign_key=signed.key)
    assert again.action == "built" and again.pushed
    assert f"warning: not reusing {signed.first.image}: unsigned; building it again" in again.warnings
    rebuilt = _by_digest(again.image)
    assert rebuilt.digest != tampered.digest
    assert verify(rebuilt, signed.pub, None).ok


def test_the_sbom_lists_every_locked_package_and_env_show_prints_it(
    signed: Signed, services: Services, cli
) -> None:
    lock = read_unified(signed.spec.with_name("layerkit.conda-lock.yml"))
    wanted = {
        (p.manager, p.name, p.version, p.sha256, p.md5) for p in lock.packages if p.platform == "linux-64"
    }
    assert len(wanted) >= 3  # python, datakit, mlkit and their dependencies
    data = sbom.fetch(OciClient(), ImageRef.parse(signed.first.image))
    assert data is not None
    doc = json.loads(data)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    assert doc["metadata"]["component"]["version"] == signed.first.hash

    def row(c: dict[str, object]) -> tuple[object, ...]:
        props = {p["name"]: p["value"] for p in c["properties"]}  # type: ignore[attr-defined]
        hashes = {h["alg"]: h["content"] for h in c.get("hashes", [])}  # type: ignore[attr-defined]
        return props["layerkit:manager"], c["name"], c["version"], hashes.get("SHA-256"), hashes.get("MD5")

    assert {row(c) for c in doc["components"]} == wanted
    assert all(c.get("hashes") for c in doc["components"])
    registered = cli("env", "register", signed.spec)
    assert registered.code == 0, registered.err
    shown = cli("env", "show", "demo-train", "--spec", signed.spec, "--sbom")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out) == doc


def test_an_unsigned_stage_image_is_no_cache_source_and_is_rebuilt(
    signed: Signed, services: Services
) -> None:
    """Tamper a stage image (another image under `<repo>-env:<env hash>`): under the gate it
    is not taken as the build's cache source, but solved, pushed and signed again."""
    env_ref = signed.first.stages["env"]
    RegistryClient().copy(ImageRef.parse(services.base_image), ImageRef.parse(env_ref))
    assert verify(_by_digest(env_ref), signed.pub, None).reason == "unsigned"
    again, _ = build_spec(
        signed.spec, services, force=True, require_signature=signed.pub, sign_key=signed.key
    )
    assert f"warning: not reusing {env_ref}: unsigned; building it again" in again.warnings
    assert again.stages["env"] == env_ref
    assert verify(_by_digest(env_ref), signed.pub, None).ok
    assert not any("not reusing" in w and "-base:" in w for w in again.warnings)  # base was signed


def test_plan_shows_the_gate(signed: Signed, services: Services) -> None:
    from layerkit import api
    from layerkit.build.builder import BuildOptions

    trusted = api.plan(signed.spec, options=BuildOptions(require_signature=signed.pub))
    assert trusted.action == "found" and not [w for w in trusted.warnings if "not reusing" in w]
    refused = api.plan(signed.spec, options=BuildOptions(require_signature=signed.other_pub))
    assert refused.action == "build" and refused.decision.found_at is None
    assert any(w.startswith(f"warning: not reusing {refused.image}: bad signature") for w in refused.warnings)


def test_sign_signs_only_stage_images_this_run_built(signed: Signed, services: Services) -> None:
    """A stage image that was already there (here: an unsigned image planted under
    `<repo>-env:<env hash>`) is not this run's to sign: `--sign` without the gate leaves it
    unsigned, so a gated build still refuses it."""
    env_ref = signed.first.stages["env"]
    RegistryClient().copy(ImageRef.parse(services.base_image), ImageRef.parse(env_ref))
    planted = _by_digest(env_ref)
    forced, _ = build_spec(signed.spec, services, force=True, sign_key=signed.key)
    assert forced.action == "built" and forced.pushed
    assert "env" not in forced.stage_digests  # there already: not solved, not signed
    assert verify(planted, signed.pub, None).reason == "unsigned"
    assert _by_digest(env_ref) == planted
    assert verify(_by_digest(forced.image), signed.pub, None).ok
    # Leave it signed as the fixture made it: the gate refuses the planted one, rebuilt and signed.
    again, _ = build_spec(
        signed.spec, services, force=True, require_signature=signed.pub, sign_key=signed.key
    )
    assert again.stage_digests["env"] == _by_digest(env_ref).digest
    assert verify(_by_digest(env_ref), signed.pub, None).ok


def test_sign_signs_the_digest_pushed_not_what_the_tag_names_later(
    signed: Signed, services: Services
) -> None:
    """A push to the hash tag between the build's push and its signing (simulated: the tag
    moved, then attest run on the build's result) does not get the builder's signature."""
    from layerkit import api
    from layerkit.build.builder import BuildOptions
    from layerkit.envs.attest import attest

    built, _ = build_spec(signed.spec, services, force=True)
    assert built.action == "built" and built.digest and built.stage_digests == {}
    image = ImageRef.parse(built.image)
    pushed = ImageRef(image.registry, image.repository, None, built.digest)
    RegistryClient().copy(ImageRef.parse(services.base_image), image)
    moved = _by_digest(built.image)
    assert moved.digest != built.digest
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="host", sign_key=signed.key)
    notes: list[str] = []
    attest(api.render(signed.spec), opts, built, notes.append)
    assert notes[0] == f"signing {pushed}"
    assert verify(pushed, signed.pub, None).ok
    assert verify(moved, signed.pub, None).reason == "unsigned"
    # Put the built image back under its tag, as the fixture made it.
    RegistryClient().copy(pushed, image)
