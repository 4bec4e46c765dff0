"""The OCI image index of a multi-platform image: its document, and each platform's entry
read back (pure; the registry calls are in multiplatform.py).

The document's bytes are a function of its entries alone (sorted by platform, compact JSON,
sorted keys): two runs that assemble the same platform images put the same index, so
concurrent runs and a repair after a partial push agree on its digest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from layerkit.build.registry import listed
from layerkit.errors import RegistryError
from layerkit.spec.ociplatform import oci, os_arch

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
# What may stand at a platform's place: an image manifest (OCI or Docker's v2 schema 2).
IMAGE_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
LIST_TYPES = (INDEX_TYPE, "application/vnd.docker.distribution.manifest.list.v2+json")
HASH_ANNOTATION = "io.layerkit.hash"


@dataclass(frozen=True)
class Entry:
    """One platform's image manifest, as the index lists it."""

    platform: str  # conda platform: linux-64
    digest: str
    size: int
    media_type: str

    def descriptor(self) -> dict[str, object]:
        os_, arch = os_arch(self.platform)
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            "platform": {"architecture": arch, "os": os_},
        }


def document(entries: Iterable[Entry], index_hash: str) -> bytes:
    """The index's bytes: each platform's manifest with its platform, sorted by platform."""
    doc = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [e.descriptor() for e in sorted(entries, key=lambda e: e.platform)],
        "annotations": {HASH_ANNOTATION: index_hash},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _listed(doc: Mapping[str, Any], platform: str, what: str) -> dict[str, Any] | None:
    """The first descriptor an index lists for the conda `platform`, None when it lists none."""
    return listed(doc, *os_arch(platform), what)


def entries_of(doc: Mapping[str, Any], platforms: Iterable[str], what: str) -> dict[str, str]:
    """platform -> the manifest digest an index lists for it (platforms it lacks are absent)."""
    found: dict[str, str] = {}
    for p in platforms:
        m = _listed(doc, p, what)
        if m is not None and isinstance(m.get("digest"), str):
            found[p] = m["digest"]
    return found


def platform_child(doc: Mapping[str, Any], platform: str, what: str) -> Entry:
    """A platform's manifest inside an index BuildKit pushed (one that also lists attestation
    manifests under platform unknown/unknown): its own descriptor."""
    m = _listed(doc, platform, what) or {}
    digest, size, media = m.get("digest"), m.get("size"), m.get("mediaType")
    if isinstance(digest, str) and isinstance(size, int) and media in IMAGE_TYPES:
        return Entry(platform, digest, size, str(media))
    raise RegistryError(f"{what} holds no {oci(platform)} image manifest")
