"""Where environment versions live: the registry, one repository per environment name.

Layout: `<address>/<repository>-envs/<normalised name>:<version>` is an OCI artifact whose
config blob (and single layer) is the record; `…:sha256-<env hash>` tags the same manifest,
so "is this environment registered already?" is one HEAD. Versions are the repository's
tags, names the registry's catalog under `<repository>-envs/`.

The registry is the truth; writes need it. Every record read or written is kept in a local,
content-addressed index (LocalIndex): online, it only saves fetching the bytes of a
manifest digest the registry just named; reads fall back to it, with a warning, when the
registry cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from layerkit import atomic
from layerkit.build.registry import ImageRef, json_object, sha256_digest
from layerkit.envs.models import (
    CONFIG_MEDIA_TYPE,
    HASH_TAG_PREFIX,
    RECORD_MEDIA_TYPE,
    EnvRecord,
    normalise_name,
    sort_versions,
)
from layerkit.envs.oci import OciClient
from layerkit.errors import RegistryError, RegistryUnreachable, SpecError

if TYPE_CHECKING:
    from layerkit.spec.models import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DEFAULT_PREFIX = "layerkit-envs"  # <registry.repository's default>-envs
T = TypeVar("T")


@dataclass(frozen=True)
class Location:
    host: str  # localhost:5000
    prefix: str  # team/layerkit-envs: repositories of environments live below it

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}"

    def repo(self, name: str) -> str:
        return f"{self.prefix}/{normalise_name(name)}"


def locate(address: str, repository: str | None) -> Location:
    from layerkit.build.request import repository as image_repository

    full = image_repository(address, repository) + "-envs"
    ref = ImageRef.parse(full + ":x")  # the host as `layerkit build` reads it
    return Location(ref.registry, ref.repository)


class IndexEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_digest: str
    record: EnvRecord


class LocalIndex:
    """Records seen on this machine, per store location; a cache, never the truth.

    Content-addressed: manifests and records are kept as the registry served them, each
    under its sha256 (cache_dir()/envs/blobs/sha256/<hex>), checked against that digest on
    every read; a version names its manifest by digest (…/refs/<host>/<path>/<name>/<version>.json).
    So an edited record or manifest reads as absent: the registry is asked again (`fetch`
    looks records up by the digest the registry answers for the tag), and offline there is
    nothing forged to show, only what the registry once served."""

    def __init__(self, root: Path, loc: Location) -> None:
        self.dir = root / "refs" / loc.host.replace(":", "_") / loc.prefix
        self.blobs = root / "blobs" / "sha256"

    def _path(self, name: str, version: str) -> Path:
        return self.dir / normalise_name(name) / f"{version}.json"

    def _blob(self, digest: str) -> bytes | None:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or not _HEX.fullmatch(hexdigest):
            return None
        try:
            data = (self.blobs / hexdigest).read_bytes()
        except OSError:
            return None
        return data if sha256_digest(data) == digest else None

    def load(self, manifest_digest: str) -> IndexEntry | None:
        """The record of the manifest `manifest_digest`, if kept intact here."""
        manifest = self._blob(manifest_digest)
        if manifest is None:
            return None
        try:
            config = json.loads(manifest).get("config") or {}
            blob = self._blob(str(config.get("digest", "")))
            if config.get("mediaType") != CONFIG_MEDIA_TYPE or blob is None:
                return None
            return IndexEntry(manifest_digest=manifest_digest, record=EnvRecord.parse(blob, "local index"))
        except (ValueError, AttributeError, RegistryError, ValidationError):
            return None  # not ours, or from another layerkit: the registry has the truth

    def get(self, name: str, version: str) -> IndexEntry | None:
        try:
            digest = _Ref.model_validate_json(self._path(name, version).read_bytes()).manifest_digest
        except (OSError, ValidationError, ValueError):
            return None
        return self.load(digest)

    def put(self, name: str, version: str, manifest: bytes, record_blob: bytes) -> None:
        digest = sha256_digest(manifest)
        with contextlib.suppress(OSError):  # a read-only cache only costs the offline fallback
            self.blobs.mkdir(parents=True, exist_ok=True)
            for data in (record_blob, manifest):
                atomic.write_bytes(self.blobs / sha256_digest(data).removeprefix("sha256:"), data)
            path = self._path(name, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, _Ref(manifest_digest=digest).model_dump_json() + "\n")

    def versions(self, name: str) -> list[str]:
        folder = self.dir / normalise_name(name)
        return sort_versions([p.stem for p in folder.glob("*.json")]) if folder.is_dir() else []

    def names(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if p.is_dir()) if self.dir.is_dir() else []


class _Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_digest: str


_HEX = re.compile(r"[0-9a-f]{64}")


def manifest_for(record_blob: bytes, digest: str, record: EnvRecord) -> bytes:
    desc = {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest, "size": len(record_blob)}
    layer = {
        **desc,
        "mediaType": RECORD_MEDIA_TYPE,
        "annotations": {"org.opencontainers.image.title": "env.json"},
    }
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": RECORD_MEDIA_TYPE,
        "config": desc,
        "layers": [layer],
        "annotations": {
            "io.layerkit.env.hash": record.hash,
            "io.layerkit.env.name": record.name or "",
            "io.layerkit.env.version": record.version,
            "org.opencontainers.image.created": record.registered_at,
        },
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class EnvStore:
    def __init__(
        self, loc: Location, client: OciClient, index: LocalIndex, warn: Callable[[str], None], hint: str = ""
    ) -> None:
        self.loc = loc
        self.hint = hint  # names the credential variables in registry errors
        self.client = client
        self.index = index
        self._warn = warn
        self.hint = hint
        self._offline = False

    # -- reading, with the local index as fallback ------------------------------------------
    def _read(self, online: Callable[[], T], offline: Callable[[], T]) -> T:
        if not self._offline:
            try:
                return online()
            except RegistryUnreachable as exc:
                self._offline = True
                self._warn(
                    f"warning: {exc.message}; reading the local index {self.index.dir} instead "
                    "(it holds only versions this machine has seen)"
                )
            except RegistryError as exc:
                raise RegistryError(f"{exc.message}{self.hint}") from None
        return offline()

    def _ref(self, name: str, tag: str) -> ImageRef:
        return ImageRef(self.loc.host, self.loc.repo(name), tag)

    def fetch(self, name: str, tag: str) -> EnvRecord | None:
        """The record tagged `tag`: the registry names its manifest by digest, and the local
        index answers only with the bytes of that very digest (else they are fetched)."""
        info = self.client.head_manifest(self._ref(name, tag))
        if info is None:
            return None
        cached = self.index.load(info.digest)
        if cached is not None:
            return cached.record
        where = f"{self.loc.host}/{self.loc.repo(name)}:{tag}"
        raw, _, digest = self.client.get_manifest(
            ImageRef(self.loc.host, self.loc.repo(name), None, info.digest)
        )
        if digest != info.digest:
            raise RegistryError(f"{where}: the manifest served does not match its digest {info.digest[:19]}")
        config = json_object(raw, f"the manifest of {where}").get("config") or {}
        if not isinstance(config, dict) or config.get("mediaType") != CONFIG_MEDIA_TYPE:
            raise RegistryError(f"{where} is not a layerkit environment (config {config.get('mediaType')!r})")
        blob = self.client.get_blob(self.loc.host, self.loc.repo(name), str(config.get("digest", "")))
        record = EnvRecord.parse(blob, where)
        self.index.put(name, record.version, raw, blob)
        return record

    def _cached(self, name: str, version: str) -> EnvRecord | None:
        entry = self.index.get(name, version)
        return entry.record if entry else None

    def names(self) -> list[str]:
        def online() -> list[str]:
            start = self.loc.prefix + "/"
            repos = self.client.catalog(self.loc.host)
            return sorted(
                {r[len(start) :] for r in repos if r.startswith(start) and "/" not in r[len(start) :]}
            )

        return self._read(online, self.index.names)

    def registry_versions(self, name: str) -> list[str]:
        """The registry's answer, never the index's (writes decide on it)."""
        tags = self.client.tags(self.loc.host, self.loc.repo(name))
        return sort_versions([t for t in tags if not t.startswith(HASH_TAG_PREFIX)])

    def versions(self, name: str) -> list[str]:
        return self._read(lambda: self.registry_versions(name), lambda: self.index.versions(name))

    def record(self, name: str, version: str) -> EnvRecord | None:
        return self._read(lambda: self.fetch(name, version), lambda: self._cached(name, version))

    def get(self, name: str, version: str | None = None) -> EnvRecord:
        """One version (default: the latest, in numeric-aware order)."""
        versions = self.versions(name) if version is None else []
        if version is None and not versions:
            raise SpecError(f"no environment {name!r} is registered in {self.loc}{self._where_offline()}")
        wanted = version or versions[-1]
        found = self.record(name, wanted)
        if found is None:
            known = self.versions(name)
            hint = f" (versions: {', '.join(known)})" if known else " (it has no versions)"
            raise SpecError(f"{name}@{wanted} is not registered in {self.loc}{hint}{self._where_offline()}")
        return found

    def _where_offline(self) -> str:
        return "; the registry was unreachable, so only the local index was searched" if self._offline else ""

    # -- writing: the registry is required ------------------------------------------------
    def find_hash(self, name: str, env_hash: str) -> EnvRecord | None:
        return self.fetch(name, HASH_TAG_PREFIX + env_hash)

    def put(self, record: EnvRecord) -> None:
        name = record.name or "anonymous"
        repo = self.loc.repo(name)
        blob = record.canonical()
        digest = self.client.put_blob(self.loc.host, repo, blob)
        manifest = manifest_for(blob, digest, record)
        # The version tag first: a hash tag never points at a version that is not there.
        self.client.put_manifest(self.loc.host, repo, record.version, manifest, OCI_MANIFEST)
        self.client.put_manifest(self.loc.host, repo, HASH_TAG_PREFIX + record.hash, manifest, OCI_MANIFEST)
        self.index.put(name, record.version, manifest, blob)


def open_store(
    address: str | None,
    registry: Registry | None,
    warn: Callable[[str], None],
    *,
    from_env: bool = True,
    timeout: float = 10.0,
    repository: str | None = None,
) -> EnvStore:
    """The store of the registry `layerkit build` pushes to: `address` (--registry) or the
    spec's registry.address, then (`from_env`, for reads) $LAYERKIT_REGISTRY; credentials
    resolved as for builds."""
    from layerkit.build.lookup import credentials_lookup
    from layerkit.resources import cache_dir

    addr = address or (registry.address if registry else None)
    addr = addr or (os.environ.get("LAYERKIT_REGISTRY") if from_env else None)
    if not addr:
        how = (
            "--registry HOST[:PORT][/PATH] or --spec SPEC (its registry section), or set $LAYERKIT_REGISTRY"
            if from_env
            else "--registry HOST[:PORT][/PATH] or set registry.address in the spec"
        )
        raise SpecError(f"environment versions live in a registry: pass {how}")
    named = repository or (registry.repository if registry else None)
    loc = locate(addr, named)
    hint = ""
    if registry and (registry.username_env or registry.password_env):
        hint = f" (credentials from ${registry.username_env} / ${registry.password_env})"
    client = OciClient(credentials_lookup(registry, loc.host), timeout=timeout)
    if named is None and from_env:  # a read with only an address: find the repository in use
        loc = _discover(loc, client)
    return EnvStore(loc, client, LocalIndex(cache_dir() / "envs", loc), warn, hint)


def _discover(default: Location, client: OciClient) -> Location:
    """With --registry ADDRESS alone, the environments registered under any registry.repository
    of that address: the default one if it has any, else the only one that does."""
    try:
        repos = client.catalog(default.host)
    except RegistryError:  # unreachable or no catalog: the default, read as before
        return default
    base = default.prefix.removesuffix(DEFAULT_PREFIX)
    found = sorted(
        {r.rsplit("/", 1)[0] for r in repos if r.startswith(base) and r.rsplit("/", 1)[0].endswith("-envs")}
    )
    if not found or default.prefix in found:
        return default
    if len(found) > 1:
        repos_named = ", ".join(p.removeprefix(base).removesuffix("-envs") for p in found)
        raise SpecError(
            f"{default.host}/{base} holds environments of several repositories ({repos_named}): "
            "pass --spec SPEC, a spec whose registry section names the repository"
        )
    return Location(default.host, found[0])
