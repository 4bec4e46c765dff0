"""An image's SBOM from its lock: CycloneDX 1.5 JSON listing every conda and pip package the
image installs, with version, build, channel, checksums and package URL (purl).

Pure and deterministic: the same lock, platform and image give the same bytes (no timestamp,
a serial number derived from the hash), so attaching it again stores nothing new.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass

from layerkit.lock.model import Lock, LockedPackage

MEDIA_TYPE = "application/vnd.cyclonedx+json"
SPEC_VERSION = "1.5"
_SERIAL_NAMESPACE = uuid.UUID("6f1d3c4e-7a51-4b1e-9a57-1ae7c0de5b0a")  # layerkit's own, fixed


@dataclass(frozen=True)
class SbomPackage:
    manager: str  # conda | pip
    name: str
    version: str
    build: str
    channel: str  # where it came from: the conda channel URL, the pip file's folder URL
    url: str
    sha256: str | None
    md5: str | None
    purl: str


def _without_userinfo(url: str) -> str:
    """A URL without `user:password@`: an SBOM is published, credentials never are."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe=":/")


def purl(p: LockedPackage, channel: str) -> str:
    """The package URL (github.com/package-url/purl-spec): pkg:conda with build, channel,
    subdir and archive type qualifiers (sorted, as the spec's canonical form wants), or
    pkg:pypi with the PEP 503 normalised name."""
    if p.manager == "pip":
        name = re.sub(r"[-_.]+", "-", p.name).lower()
        return f"pkg:pypi/{_q(name)}@{_q(p.version)}"
    kind = "conda" if p.url.endswith(".conda") else "tar.bz2"
    qualifiers = {"build": p.build, "channel": channel, "subdir": p.platform, "type": kind}
    query = "&".join(f"{k}={_q(v)}" for k, v in sorted(qualifiers.items()) if v)
    return f"pkg:conda/{_q(p.name.lower())}@{_q(p.version)}?{query}"


def packages(lock: Lock, platform: str) -> tuple[SbomPackage, ...]:
    """Every package the image of `platform` installs from the lock: conda first, then pip."""
    found = []
    for manager in ("conda", "pip"):
        for p in lock.for_platform(platform, manager):
            url = _without_userinfo(p.url)
            folder = url.rsplit("/", 1)[0]
            # A conda URL is <channel>/<subdir>/<file>; a pip one only <folder>/<file>.
            channel = folder.rsplit("/", 1)[0] if manager == "conda" else folder
            found.append(
                SbomPackage(
                    manager, p.name, p.version, p.build, channel, url, p.sha256, p.md5, purl(p, channel)
                )
            )
    return tuple(found)


def _component(p: SbomPackage) -> dict[str, object]:
    hashes = [{"alg": "SHA-256", "content": p.sha256}] if p.sha256 else []
    hashes += [{"alg": "MD5", "content": p.md5}] if p.md5 else []
    props = {"layerkit:manager": p.manager, "layerkit:channel": p.channel}
    if p.build:
        props["layerkit:build"] = p.build
    component: dict[str, object] = {
        "type": "library",
        "bom-ref": p.purl,
        "name": p.name,
        "version": p.version,
        "purl": p.purl,
        "externalReferences": [{"type": "distribution", "url": p.url}],
        "properties": [{"name": k, "value": v} for k, v in props.items()],
    }
    if hashes:
        component["hashes"] = hashes
    return component


def cyclonedx(
    pkgs: tuple[SbomPackage, ...], *, image: str, env_hash: str, platform: str, tool_version: str
) -> dict[str, object]:
    """The CycloneDX 1.5 document: the image (its repository, its hash as version) and one
    library component per package."""
    serial = uuid.uuid5(_SERIAL_NAMESPACE, f"{image}@{env_hash}/{platform}")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "layerkit", "version": tool_version}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": image,
                "version": env_hash,
                "properties": [{"name": "layerkit:platform", "value": platform}],
            },
        },
        "components": [_component(p) for p in pkgs],
    }


def dumps(doc: dict[str, object]) -> bytes:
    """Canonical bytes: what is attached, so equal documents are one registry blob."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
