"""Signed reuse and the SBOM (issue 15 §5) against real docker-registry instances and Debian
13's cosign 2.5 (scripts/services/cosign.sh), no transparency log: sign and verify by digest,
an unsigned image, a wrong key, a tag moved to another image, credentials; the SBOM attached
as an OCI artifact referring to the image and read back, checked against its subject.
The end-to-end builds on the real engine are in tests/test_signing_build.py."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_services import SERVICES, AuthRegistry, registry, run_script

from layerkit.build.credentials import Credentials
from layerkit.build.lookup import Accept, Found, Layout, Registries, find_existing
from layerkit.build.registry import ImageRef, RegistryClient
from layerkit.build.request import targets
from layerkit.build.signing import COSIGN_ENV, sign, sign_digests, signature_gate, verify
from layerkit.envs import sbom
from layerkit.envs.oci import OCI_INDEX, OciClient
from layerkit.errors import RegistryError
from layerkit.lock.sbom import MEDIA_TYPE

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Keys:
    key: str  # private key file (password: $COSIGN_PASSWORD)
    pub: str
    other_pub: str  # a second pair's public key: verifies nothing the first signed


def generate_keys(folder: Path, password: str) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [run_script(SERVICES / "cosign.sh", timeout=600), "generate-key-pair"],
        cwd=folder, env={"COSIGN_PASSWORD": password, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return str(folder / "cosign.key"), str(folder / "cosign.pub")


@contextlib.contextmanager
def cosign_keys(folder: Path) -> Iterator[tuple[Keys, pytest.MonkeyPatch]]:
    """cosign (fetched once) on $LAYERKIT_COSIGN, two key pairs, the first's password set;
    the MonkeyPatch undoes that on exit (and whatever else the caller sets through it)."""
    key, pub = generate_keys(folder / "a", "pw-a")
    _, other = generate_keys(folder / "b", "pw-b")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(COSIGN_ENV, run_script(SERVICES / "cosign.sh", timeout=600))
        mp.setenv("COSIGN_PASSWORD", "pw-a")
        yield Keys(key, pub, other), mp


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    with cosign_keys(tmp_path_factory.mktemp("keys")) as (k, _):
        yield k


@pytest.fixture(scope="module")
def anon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with registry(tmp_path_factory.mktemp("sign-anon")) as reg:
        yield reg


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with registry(tmp_path_factory.mktemp("sign-auth"), auth=True) as reg:
        yield reg


@pytest.fixture(autouse=True)
def _no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))


def push_image(client: OciClient, ref: str, payload: bytes) -> str:
    """A one-layer OCI image (its layer: `payload`) tagged `ref`; returns its digest."""
    image = ImageRef.parse(ref)
    host, repo = image.registry, image.repository
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    cfg = client.put_blob(host, repo, config.encode())
    layer = client.put_blob(host, repo, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": cfg,
            "size": len(config),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": len(payload)}
        ],
    }
    data = json.dumps(manifest).encode()
    return client.put_manifest(
        host, repo, image.reference, data, "application/vnd.oci.image.manifest.v1+json"
    )


def by_digest(ref: str, digest: str) -> ImageRef:
    image = ImageRef.parse(ref)
    return ImageRef(image.registry, image.repository, None, digest)


def test_sign_verify_unsigned_and_wrong_key(anon: AuthRegistry, keys: Keys) -> None:
    client = OciClient()
    signed = push_image(client, f"{anon.address}/s/a:h1", b"one")
    unsigned = push_image(client, f"{anon.address}/s/a:h2", b"two")
    sign(by_digest(f"{anon.address}/s/a", signed), keys.key, None)
    assert verify(by_digest(f"{anon.address}/s/a", signed), keys.pub, None).ok
    assert verify(by_digest(f"{anon.address}/s/a", unsigned), keys.pub, None).reason == "unsigned"
    wrong = verify(by_digest(f"{anon.address}/s/a", signed), keys.other_pub, None)
    assert not wrong.ok and wrong.reason.startswith("bad signature")
    # The signature names the digest: cosign stored it under the digest's tag, not under h1.
    tags = client.tags(anon.address, "s/a")
    assert f"{signed.replace(':', '-')}.sig" in tags and f"{unsigned.replace(':', '-')}.sig" not in tags


def test_signing_is_by_digest_only(anon: AuthRegistry, keys: Keys) -> None:
    with pytest.raises(AssertionError, match="only ever given digests"):
        sign(ImageRef.parse(f"{anon.address}/s/a:h1"), keys.key, None)


def _layout(ref: str, globals_: tuple[str, ...] = ()) -> Layout:
    image = ImageRef.parse(ref)
    plan = targets(f"{image.registry}/{image.repository}", str(image.tag), {}, [])
    return Layout(image.registry, plan, image.registry, globals_, "")


def test_the_gate_reuses_only_what_verifies(anon: AuthRegistry, keys: Keys) -> None:
    """find_existing with the gate: signed -> found, with the digest verified; the hash tag
    moved to an unsigned image -> not reused, with a warning saying why; a wrong key -> not
    reused; a global registry's signed copy is then picked instead of the workspace's unsigned
    one."""
    client = OciClient()
    h = "c" * 64
    ref = f"{anon.address}/g/ws:{h}"
    global_ref = f"{anon.address}/g/global:{h}"
    signed_digest = push_image(client, ref, b"x")
    sign_digests([by_digest(ref, signed_digest)], keys.key, lambda host: None, print)
    warnings: list[str] = []
    registries = Registries(RegistryClient(), warnings.append)

    def gate(pub: str) -> Accept:
        return signature_gate(pub, lambda host: None, warnings.append)

    found = find_existing(_layout(ref), registries, None, gate(keys.pub))
    assert found == Found("workspace", ref, signed_digest, ())
    assert warnings == []
    assert find_existing(_layout(ref), registries, None, gate(keys.other_pub)) is None
    assert len(warnings) == 1 and "bad signature" in warnings[0] and ref in warnings[0]
    # Tamper: another (unsigned) image pushed under the same hash tag.
    push_image(client, ref, b"not what was signed")
    warnings.clear()
    check = gate(keys.pub)
    assert find_existing(_layout(ref), registries, None, check) is None
    assert find_existing(_layout(ref), registries, None, check) is None
    assert warnings == [f"warning: not reusing {ref}: unsigned; building it again"]  # once
    # A signed image in a global registry is reused (copied) when the workspace's is not.
    global_digest = push_image(client, global_ref, b"x")
    sign_digests([by_digest(global_ref, global_digest)], keys.key, lambda host: None, print)
    found = find_existing(_layout(ref, (global_ref,)), registries, None, gate(keys.pub))
    assert found == Found("global", global_ref, global_digest, ())


def test_the_gate_verifies_the_digest_it_is_given_not_what_the_tag_names(
    anon: AuthRegistry, keys: Keys
) -> None:
    """The digest decided is what is verified: the tag moved to a signed image afterwards does
    not make an unsigned digest pass, nor the reverse."""
    client = OciClient()
    ref = f"{anon.address}/g/moved:1"
    unsigned = push_image(client, ref, b"unsigned")
    signed = push_image(client, ref, b"signed")
    sign_digests([by_digest(ref, signed)], keys.key, lambda host: None, print)
    warnings: list[str] = []
    accept = signature_gate(keys.pub, lambda host: None, warnings.append)
    assert not accept(ref, unsigned) and warnings == [
        f"warning: not reusing {ref}: unsigned; building it again"
    ]
    assert accept(ref, signed)
    assert not accept(ref, "sha256:../x")  # no digest: never handed to cosign


def test_signing_needs_the_digest_the_build_answered(anon: AuthRegistry, keys: Keys) -> None:
    """sign_digests never resolves a tag: an image without a digest is refused."""
    with pytest.raises(RegistryError, match="gave no sha256 digest"):
        sign_digests([ImageRef.parse(f"{anon.address}/g/x:1")], keys.key, lambda host: None, print)


def test_sign_and_verify_through_registry_credentials(authed: AuthRegistry, keys: Keys) -> None:
    """Credentials reach cosign through a private DOCKER_CONFIG; without them it is refused."""
    creds = Credentials(authed.username, authed.password)
    client = OciClient(lambda host: creds)
    ref = f"{authed.address}/p/img:h"
    digest = push_image(client, ref, b"private")
    signed = sign_digests([by_digest(ref, digest)], keys.key, lambda host: creds, print)
    assert signed == [str(by_digest(ref, digest))]
    assert verify(by_digest(ref, digest), keys.pub, creds).ok
    anonymous = verify(by_digest(ref, digest), keys.pub, None)
    assert not anonymous.ok and anonymous.reason.startswith("signature verify failed")
    assert authed.password not in anonymous.reason


def test_sbom_attached_to_its_image_and_read_back(anon: AuthRegistry) -> None:
    client = OciClient()
    ref = f"{anon.address}/b/img:h"
    digest = push_image(client, ref, b"image")
    other = f"{anon.address}/b/img:other"
    push_image(client, other, b"another image")
    doc = b'{"bomFormat":"CycloneDX","specVersion":"1.5"}'
    art = sbom.attach(client, ImageRef.parse(ref), doc)
    assert sbom.attach(client, ImageRef.parse(ref), doc) == art  # idempotent
    assert sbom.fetch(client, ImageRef.parse(ref)) == doc
    assert sbom.fetch(client, ImageRef.parse(f"{anon.address}/b/img@{digest}")) == doc
    assert sbom.fetch(client, ImageRef.parse(other)) is None
    # distribution 2.8 has no referrers API: the artifact is listed once under the tag schema.
    index = json.loads(
        client.get_manifest(ImageRef.parse(f"{anon.address}/b/img:{digest.replace(':', '-')}"))[0]
    )
    assert [m["digest"] for m in index["manifests"]] == [art]
    assert index["manifests"][0]["artifactType"] == MEDIA_TYPE
    manifest = json.loads(client.get_manifest(ImageRef.parse(f"{anon.address}/b/img@{art}"))[0])
    assert manifest["subject"]["digest"] == digest and manifest["artifactType"] == MEDIA_TYPE
    # An index that lists this artifact for another image is not believed: wrong subject.
    other_digest = client.head_manifest(ImageRef.parse(other))
    assert other_digest is not None
    forged = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index["manifests"]}
    ).encode()
    client.put_manifest(anon.address, "b/img", other_digest.digest.replace(":", "-"), forged, OCI_INDEX)
    assert sbom.fetch(client, ImageRef.parse(other)) is None


def test_env_show_sbom_says_when_there_is_none(anon: AuthRegistry) -> None:
    from layerkit.errors import EnvironmentFailure

    client = OciClient()
    ref = f"{anon.address}/b/bare:h"
    push_image(client, ref, b"no sbom")
    with pytest.raises(EnvironmentFailure, match="has no SBOM attached"):
        sbom.image_sbom(client, ref)
    with pytest.raises(EnvironmentFailure, match="is not in the registry"):
        sbom.image_sbom(client, f"{anon.address}/b/bare:missing")


def test_a_copy_after_the_gate_copies_the_verified_digest_even_if_the_tag_moved(
    anon: AuthRegistry, keys: Keys
) -> None:
    """Decide (the gate verifies the global image's digest), then someone moves the global
    tag to an unsigned image, then the copy runs: the workspace gets the verified image."""
    from layerkit.build.builder import BuildResult, _reuse
    from layerkit.build.decisions import decide
    from layerkit.build.options import BuildOptions

    client = OciClient()
    h = "d" * 64
    ws_ref, global_ref = f"{anon.address}/m/ws:{h}", f"{anon.address}/m/global:{h}"
    verified = push_image(client, global_ref, b"signed")
    sign_digests([by_digest(global_ref, verified)], keys.key, lambda host: None, print)
    warnings: list[str] = []
    registries = Registries(RegistryClient(), warnings.append)
    gate = signature_gate(keys.pub, lambda host: None, warnings.append)
    decision = decide(
        _layout(ws_ref, (global_ref,)), registries, BuildOptions(), warnings.append, accept=gate
    )
    assert decision.action == "copy" and decision.found_digest == verified, warnings
    moved = push_image(client, global_ref, b"pushed after the verify")
    assert moved != verified
    result = BuildResult(hash=h, image=ws_ref, action="built")
    _reuse(decision, registries, result)
    info = RegistryClient().head_manifest(ImageRef.parse(ws_ref))
    assert info is not None and info.digest == verified == result.digest
