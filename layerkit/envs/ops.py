"""The environment-version operations behind layerkit.api's env_* functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.envs.diff import EnvDiff, diff
from layerkit.envs.models import ANONYMOUS, EnvRecord
from layerkit.envs.register import Registered, register
from layerkit.envs.store import EnvStore, open_store
from layerkit.errors import RegistryError, SpecError

if TYPE_CHECKING:
    from layerkit.build.builder import BuildResult
    from layerkit.pipeline import Rendered
    from layerkit.spec.models import Registry

Warn = Callable[[str], None]
LIST_SCHEMA = "layerkit.env-list/1"


@dataclass(frozen=True)
class Listed:
    name: str  # as stored (normalised)
    versions: tuple[str, ...]  # numeric-aware order, oldest first
    records: tuple[EnvRecord, ...] = ()  # filled when one name was asked for

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "name": self.name,
            "versions": list(self.versions),
            "latest": self.versions[-1] if self.versions else None,
        }
        if self.records:
            doc["records"] = [
                {
                    "version": r.version,
                    "hash": r.hash,
                    "registered_at": r.registered_at,
                    "description": r.description,
                    "image": r.image,
                }
                for r in self.records
            ]
        return doc


@dataclass(frozen=True)
class Listing:
    store: str
    environments: tuple[Listed, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "schema": LIST_SCHEMA,
            "store": self.store,
            "environments": [e.to_json() for e in self.environments],
        }


def parse_ref(ref: str) -> tuple[str, str | None]:
    """NAME[@VERSION]; NAME@latest is NAME."""
    name, at, version = ref.rpartition("@")
    if not at:
        name, version = ref, ""
    if not name:
        raise SpecError(f"{ref!r}: expected NAME[@VERSION]")
    if at and not version:
        raise SpecError(f"{ref!r}: no version after '@' (expected NAME@VERSION)")
    return name, (None if version in ("", "latest") else version)


def spec_registry(spec: Path | None) -> Registry | None:
    """The registry section of a spec (its credential variable names included)."""
    if spec is None:
        return None
    from layerkit.spec.merge import resolve

    return resolve(Path(spec)).spec.registry


def _store(registry: str | None, spec: Path | None, warn: Warn) -> EnvStore:
    return open_store(registry, spec_registry(spec), warn)


def register_rendered(
    rendered: Rendered, registry: str | None, warn: Warn, renders: Sequence[Rendered] = ()
) -> Registered:
    """``renders``: every platform's render of a multi-platform spec (``rendered`` among them),
    whose images' digests, and the index's, the record holds too."""
    from layerkit.build.builder import BuildOptions
    from layerkit.build.lookup import layout
    from layerkit.build.multiplatform import index_layout
    from layerkit.envs.record import build_record
    from layerkit.pipeline import renders_index_hash

    spec = rendered.checked.resolved.spec
    store = open_store(registry, spec.registry, warn, from_env=False)
    opts = BuildOptions(registry=registry)
    # Where `layerkit build` (with the same --registry) pushes this environment's image.
    image = layout(rendered, opts).main.ref
    where = rendered.checked.resolved.loc(("version",)) if spec.version is not None else None
    digests = {
        r.plan.platform: d for r in renders or (rendered,) if (d := _pushed(store, layout(r, opts).main.ref))
    }
    index = None
    env_hash = rendered.hash.hash
    if len(renders) > 1:
        # The environment is the image index, as `layerkit hash` and `build` name it.
        env_hash = renders_index_hash(renders)
        image = index_layout(rendered, env_hash, opts).ref
        index = (image, _pushed(store, image))
    done = register(
        store,
        lambda version: build_record(
            rendered, image=image, version=version, digests=digests, index=index, env_hash=env_hash
        ),
        name=spec.name,
        env_hash=env_hash,
        wanted=spec.version,
        where=where,
    )
    if rendered.plan.platform not in digests:
        warn(f"warning: {done.record.image} is not in the registry yet: `layerkit build` pushes it")
    return done


def _pushed(store: EnvStore, ref: str) -> str | None:
    """The manifest digest `ref` names in the registry; None when missing or unknown (the
    record is stored either way: its digests are what could be seen)."""
    from layerkit.build.registry import ImageRef, manifest_digest

    try:
        return manifest_digest(store.client, ImageRef.parse(ref))
    except RegistryError:
        return None


def check_recorded(
    rendered: Rendered,
    results: dict[str, BuildResult],
    registry: str | None,
    warn: Warn,
    renders: Sequence[Rendered] = (),
) -> None:
    """Warn when a build pushed, under a registered environment's hash, another digest than its
    record holds (a repair of a deleted image, a forced rebuild): reported, not hidden. The
    record is found by the image's hash: ``rendered``'s, or with ``renders`` (every platform
    of a multi-platform spec) the index's; a store that cannot be read is no reason to fail a
    build that succeeded."""
    from layerkit.errors import LayerkitError
    from layerkit.pipeline import renders_index_hash

    built = {p: r for p, r in results.items() if r.action == "built" and r.pushed and r.digest}
    spec = rendered.checked.resolved.spec
    if not built:
        return
    try:
        store = open_store(registry, spec.registry, lambda _m: None, from_env=False)
        env_hash = renders_index_hash(renders) if len(renders) > 1 else rendered.hash.hash
        record = store.find_hash(spec.name or ANONYMOUS, env_hash)
    except LayerkitError:
        return
    for p, r in sorted(built.items()):
        was = record.digests.get(p) if record is not None else None
        if was and r.digest != was:
            assert record is not None
            message = (
                f"warning: {r.image} is now {r.digest}, but environment {record.ref} records {was} "
                "for it: this build did not reproduce the registered image"
            )
            r.warnings.append(message)
            warn(message)


def listing(name: str | None, registry: str | None, spec: Path | None, warn: Warn) -> Listing:
    store = _store(registry, spec, warn)
    if name is None:
        found = tuple(Listed(n, tuple(store.versions(n))) for n in store.names())
        return Listing(str(store.loc), found)
    versions = store.versions(name)
    records = tuple(r for v in versions if (r := store.record(name, v)) is not None)
    stored = store.loc.repo(name).rsplit("/", 1)[-1]
    return Listing(str(store.loc), (Listed(stored, tuple(versions), records),))


def show(ref: str, registry: str | None, spec: Path | None, warn: Warn) -> EnvRecord:
    name, version = parse_ref(ref)
    return _store(registry, spec, warn).get(name, version)


def show_sbom(ref: str, registry: str | None, spec: Path | None, warn: Warn) -> bytes:
    """The SBOM attached to the image of `NAME[@VERSION]`'s record (envs/sbom.py)."""
    from layerkit.envs.sbom import image_sbom

    name, version = parse_ref(ref)
    store = _store(registry, spec, warn)
    return image_sbom(store.client, store.get(name, version).image)


def diff_refs(old: str, new: str, registry: str | None, spec: Path | None, warn: Warn) -> EnvDiff:
    store = _store(registry, spec, warn)
    a, b = parse_ref(old), parse_ref(new)
    return diff(store.get(*a), store.get(*b))


__all__ = [
    "ANONYMOUS",
    "Listed",
    "Listing",
    "diff_refs",
    "listing",
    "parse_ref",
    "register_rendered",
    "show",
    "show_sbom",
]
