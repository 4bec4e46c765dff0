"""The environment record: what a registered version is, as canonical, schema-versioned JSON.

A record is immutable once registered (a version never changes), carries no credentials
(not even the names of the variables holding them) and is readable without layerkit: it is
the config blob of an OCI artifact. Fields change only with a new schema.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from layerkit.errors import RegistryError, SpecError
from layerkit.spec.imageref import is_tag
from layerkit.spec.values import version_key

RECORD_SCHEMA = "layerkit.env/1"
# OCI artifact: the record is the config blob (and the one layer, so `oras pull` gets a file).
CONFIG_MEDIA_TYPE = "application/vnd.layerkit.env.config.v1+json"
RECORD_MEDIA_TYPE = "application/vnd.layerkit.env.v1+json"
ANONYMOUS = "anonymous"  # where environments without a name are recorded, versioned by hash
HASH_TAG_PREFIX = "sha256-"  # `<prefix><env hash>` tags the version holding that hash


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Package(_Model):
    manager: Literal["conda", "pip"]
    name: str
    version: str
    build: str = ""
    checksum: str = ""  # "sha256:…" or "md5:…": a rebuild under the same version/build shows


class BaseImage(_Model):
    flavour: str | None = None  # catalog entry, when the base is one
    image: str | None = None  # FROM of the base stage, without digest
    digest: str | None = None  # pinned by the spec or recorded by the lock
    runtime: str | None = None  # FROM of the runtime stage (GPU flavours), without digest
    runtime_digest: str | None = None
    dockerfile_sha256: str | None = None  # a base given as Dockerfile text


class SourceFile(_Model):
    path: str  # as the spec named it, or builtin:NAME
    sha256: str | None = None


class LockInfo(_Model):
    path: str
    spec_hash: str | None = None  # the inputs the lock was made for (layerkit's lock hash)


class EnvRecord(_Model):
    schema_: Literal["layerkit.env/1"] = Field(default="layerkit.env/1", alias="schema")
    name: str | None  # None: an anonymous environment
    version: str
    description: str | None = None
    hash: str
    stages: dict[str, str]  # shareable stage -> stage hash
    image: str  # <registry>/<repository>:<hash>, where `layerkit build` pushes it
    base: BaseImage
    platforms: dict[str, tuple[Package, ...]]  # locked packages per platform, sorted
    channels: tuple[str, ...] = ()
    requested: tuple[str, ...] = ()  # conda specs as written (+ "pip:" specs), sorted
    apt: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    sources: tuple[SourceFile, ...] = ()
    lock: LockInfo | None = None
    registered_at: str  # UTC, ISO 8601
    # Added within schema 1 (older records lack them; readers default them): the manifest
    # digest of each platform's image as the registry held it at registration (`layerkit
    # build` pushed it; a platform not built yet is absent), and a multi-platform spec's image
    # index (<repository>:<index hash>) and its digest. What `build` later pushes under the same
    # hash is checked against them (issue 18: a digest that would differ is reported).
    digests: dict[str, str] = Field(default_factory=dict)
    index: str | None = None
    index_digest: str | None = None
    layerkit_version: str

    @property
    def ref(self) -> str:
        return f"{self.name or ANONYMOUS}@{self.version}"

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = self.model_dump(mode="json", by_alias=True)
        return data

    def canonical(self) -> bytes:
        """The bytes stored in the registry: sorted keys, no whitespace, UTF-8."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> EnvRecord:
        try:
            doc = json.loads(data)
        except ValueError:
            raise RegistryError(f"{where}: not an environment record (not JSON)") from None
        schema = doc.get("schema") if isinstance(doc, dict) else None
        if schema != RECORD_SCHEMA:
            raise RegistryError(
                f"{where}: record schema {schema!r} is not {RECORD_SCHEMA!r}; a newer layerkit wrote it (upgrade)"
            )
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            raise RegistryError(f"{where}: malformed environment record: {exc.errors()[0]['msg']}") from None


def normalise_name(name: str) -> str:
    """A repository path component (`[a-z0-9]+([._-][a-z0-9]+)*`) for an environment name."""
    s = re.sub(r"[^a-z0-9._-]+", "-", name.lower())
    s = re.sub(r"[._-]{2,}", "-", s).strip("._-")
    if not s:
        raise SpecError(f"environment name {name!r} has no letters or digits to name it by")
    return s


def check_version(version: str, where: str = "") -> str:
    if not is_tag(version):
        raise SpecError(
            f"{where}version {version!r} cannot be a registry tag: use letters, digits, '_', '.', '-' (at most 128)"
        )
    if version.startswith(HASH_TAG_PREFIX) or version == "latest":
        raise SpecError(f"{where}version {version!r} is reserved; pick another")
    return version


def sort_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=lambda v: (version_key(v), v))
