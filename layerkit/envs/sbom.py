"""The SBOM in the registry (issue 15 §5): attached to the image it describes as an OCI 1.1
artifact (an image manifest with artifactType application/vnd.cyclonedx+json, an empty config,
the document as its one layer and `subject` = the image), and read back for `env show --sbom`.

Registries with the referrers API index the artifact themselves; for the others (Debian 12's
distribution 2.8) the artifact is listed in the referrers tag schema's index, tagged
`sha256-<hex of the image digest>`, as the OCI distribution spec says. What is read back is
checked, never trusted: the artifact must name the image as its subject, and the document
must match its digest.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from layerkit.build.registry import json_object, sha256_digest
from layerkit.envs.oci import OCI_INDEX, OciClient
from layerkit.errors import EnvironmentFailure, RegistryError
from layerkit.lock.sbom import MEDIA_TYPE
from layerkit.spec.imageref import ImageRef, is_digest

if TYPE_CHECKING:
    from collections.abc import Callable

    from layerkit.build.credentials import Credentials
    from layerkit.lock.model import Lock

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


def attach(client: OciClient, image: ImageRef, sbom: bytes) -> str:
    """Attach `sbom` to the image `image` names now; returns the artifact's manifest digest.
    Attaching the same document again stores nothing new (equal bytes, equal digests)."""
    host, repo = image.registry, image.repository
    subject_data, subject_type, subject_digest = client.get_manifest(image)
    config = client.put_blob(host, repo, EMPTY)
    layer = client.put_blob(host, repo, sbom)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": MEDIA_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": config, "size": len(EMPTY)},
        "layers": [{"mediaType": MEDIA_TYPE, "digest": layer, "size": len(sbom)}],
        "subject": {"mediaType": subject_type, "digest": subject_digest, "size": len(subject_data)},
    }
    data = _dumps(manifest)
    digest = client.put_manifest(host, repo, sha256_digest(data), data, OCI_MANIFEST)
    if client.referrers(host, repo, subject_digest) is None:
        _list_in_fallback_tag(client, image, subject_digest, {
            "mediaType": OCI_MANIFEST, "digest": digest, "size": len(data), "artifactType": MEDIA_TYPE,
        })  # fmt: skip
    return digest


def _list_in_fallback_tag(client: OciClient, image: ImageRef, subject: str, entry: dict[str, object]) -> None:
    tag = ImageRef(image.registry, image.repository, _fallback_tag(subject))
    manifests: list[object] = []
    if client.head_manifest(tag) is not None:
        data, _, _ = client.get_manifest(tag)
        listed = json_object(data, f"registry {image.registry}: the referrers index {tag}").get("manifests")
        manifests = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    if any(isinstance(m, dict) and m.get("digest") == entry["digest"] for m in manifests):
        return
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*manifests, entry]}
    client.put_manifest(image.registry, image.repository, tag.reference, _dumps(index), OCI_INDEX)


def _referrer_digests(client: OciClient, image: ImageRef, subject: str) -> list[str]:
    data = client.referrers(image.registry, image.repository, subject)
    if data is None:
        tag = ImageRef(image.registry, image.repository, _fallback_tag(subject))
        if client.head_manifest(tag) is None:
            return []
        data, _, _ = client.get_manifest(tag)
    what = f"registry {image.registry}: the referrers index of {image}"
    listed = json_object(data, what).get("manifests")
    if listed is None:
        return []
    if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed):
        raise RegistryError(f"{what}: 'manifests' is not a list of objects")
    digests = [m.get("digest") for m in listed if m.get("artifactType") == MEDIA_TYPE]
    # Each goes into a URL path: only a sha256 digest does.
    if not all(isinstance(d, str) and is_digest(d) for d in digests):
        raise RegistryError(f"{what}: an SBOM entry's digest is not a sha256 digest")
    return [str(d) for d in digests]


def fetch(client: OciClient, image: ImageRef) -> bytes | None:
    """The SBOM attached to the image `image` names (the newest listed), or None. A registry
    answer of the wrong shape is a RegistryError (exit 3, one line), never a traceback."""
    _, _, subject = client.get_manifest(image)
    for digest in reversed(_referrer_digests(client, image, subject)):
        # Asked by digest, get_manifest refuses an answer of another digest.
        data, _, _ = client.get_manifest(ImageRef(image.registry, image.repository, None, digest))
        what = f"registry {image.registry}: the SBOM manifest {digest[:19]} of {image.repository}"
        doc = json_object(data, what)
        named = doc.get("subject")
        if not isinstance(named, dict) or named.get("digest") != subject:
            continue  # not this image's SBOM, whatever the index says
        layers = doc.get("layers")
        if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
            raise RegistryError(f"{what}: 'layers' is not a list of descriptors")
        first = layers[0]
        if first.get("mediaType") != MEDIA_TYPE:
            continue
        blob = first.get("digest")
        if not isinstance(blob, str) or not is_digest(blob):
            raise RegistryError(f"{what}: its layer's digest is not a sha256 digest")
        document = client.get_blob(image.registry, image.repository, blob)
        json_object(document, f"registry {image.registry}: the SBOM {blob[:19]} of {image.repository}")
        return document
    return None


def attach_from_lock(
    lock: Lock | None,
    platform: str,
    image: str,
    env_hash: str,
    creds: Callable[[str], Credentials | None],
    note: Callable[[str], None],
) -> str | None:
    """Make the image's SBOM from its lock and attach it; None (with a note) without a lock."""
    from layerkit import __version__
    from layerkit.lock.sbom import cyclonedx, dumps, packages

    if lock is None:
        note(f"note: {image} gets no SBOM: it was built without a lock")
        return None
    ref = ImageRef.parse(image)
    doc = cyclonedx(
        packages(lock, platform),
        image=ref.name,
        env_hash=env_hash,
        platform=platform,
        tool_version=__version__,
    )
    digest = attach(OciClient(creds), ref, dumps(doc))
    note(f"{image}: SBOM attached ({digest})")
    return digest


def image_sbom(client: OciClient, image: str) -> bytes:
    """`env show --sbom`: the SBOM attached to `image` (a JSON object), or an error saying
    there is none."""
    ref = ImageRef.parse(image)
    if client.head_manifest(ref) is None:
        raise EnvironmentFailure(f"{image} is not in the registry: `layerkit build` pushes it and its SBOM")
    found = fetch(client, ref)
    if found is None:
        raise EnvironmentFailure(f"{image} has no SBOM attached (it was built before layerkit attached them)")
    return found
