"""A spec with several platforms, built as one image: each platform's image as `build` makes
it (its own render, hash, stage images and skip-by-hash), pushed at `<repo>:<platform hash>`;
then an OCI image index over them, put through layerkit's own registry client at
`<repo>:<index hash>` and the name tags, last. One path on every engine: dockerd 20.10 (moby
exporter, engine push) has no multi-platform export, and none is needed.

Skip-by-hash: the index exists, each platform's image is complete (found, as `build` finds
one) and the index lists, for each platform, the manifest its `<repo>:<platform hash>` names
now. Anything less is repaired: platforms found are reused, missing ones built, the index put
again (its bytes are a function of its entries, so a repair that changes nothing puts the
same digest).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from layerkit.build.index import (
    IMAGE_TYPES,
    INDEX_TYPE,
    LIST_TYPES,
    Entry,
    document,
    entries_of,
    platform_child,
)
from layerkit.build.request import Target
from layerkit.errors import RegistryError, SpecError

if TYPE_CHECKING:
    from layerkit.build.builder import BuildResult
    from layerkit.build.decisions import Decision
    from layerkit.build.lookup import Registries
    from layerkit.build.options import BuildOptions
    from layerkit.build.registry import RegistryClient
    from layerkit.pipeline import Rendered

IndexAction = Literal["found", "build", "unchecked"]


@dataclass(frozen=True)
class IndexLayout(Target):
    """Where the index goes: a target named by the index hash, in the environment's repository
    with its name tags (ref, refs as any target's), and the registry that holds it."""

    address: str | None = None


def index_layout(rendered: Rendered, index_hash: str, opts: BuildOptions) -> IndexLayout:
    """The repository and tags `build` would give a one-platform image, named by the index hash."""
    from layerkit.build.lookup import layout

    lay = layout(rendered, opts)
    main = lay.main
    return IndexLayout(None, index_hash, main.repo, main.extra_tags, main.cache_repo, address=lay.address)


def platform_options(opts: BuildOptions) -> BuildOptions:
    """Each platform's image carries its hash tag only: the name tags name the index."""
    return dataclasses.replace(opts, tags=(), name_tag=False)


def one_platform_options(rendered: Rendered, opts: BuildOptions) -> BuildOptions:
    """One platform of a multi-platform spec (`--platform P`, `run`, `serve`) does not take the
    name tag: it names the spec's image index, which a one-platform build must not move. Tags
    the user asked for (`--tag`) are kept: they name what this build makes."""
    from layerkit.pipeline import platforms

    multi = len(platforms(rendered.checked)) > 1
    return dataclasses.replace(opts, name_tag=False) if multi and opts.name_tag else opts


def require_registry(lay: IndexLayout, opts: BuildOptions) -> None:
    if lay.address is None:
        raise SpecError(
            "a spec with several platforms builds an image index, which lives in a registry: "
            "set registry.address or --registry, or pass --platform P to build one platform"
        )
    if not opts.push:
        raise SpecError(
            "--no-push: a spec with several platforms builds an image index, which lives in a "
            "registry; pass --platform P to build one platform into the engine"
        )


@dataclass(frozen=True)
class IndexDecision:
    """found: the index and every platform's image are complete; build: build (or reuse) each
    platform as its Decision says, then put the index; unchecked: the registry was not asked."""

    action: IndexAction
    hash: str
    image: str  # <repo>:<index hash>
    tags: tuple[str, ...]
    registry: str | None
    digest: str | None  # the index's digest in the registry now; None: missing or not asked
    platforms: dict[str, Decision]

    def to_json(self) -> dict[str, object]:
        return {
            "exists": None if self.action == "unchecked" else self.digest is not None,
            "digest": self.digest,
            "media_type": INDEX_TYPE,
            "refs": [self.image, *(f"{self.image.rsplit(':', 1)[0]}:{t}" for t in self.tags)],
        }


def descriptor(client: RegistryClient, ref: str, digest: str, platform: str) -> Entry:
    """The image manifest `ref` (by `digest`) is for `platform`: itself, or its platform's
    child when BuildKit pushed an index (attestations beside the image)."""
    from layerkit.build.registry import ImageRef, json_object

    image = ImageRef.parse(ref)
    data, media, got = client.get_manifest(ImageRef(image.registry, image.repository, None, digest))
    what = f"registry {image.registry}: manifest of {ref}"
    if media in LIST_TYPES:
        return platform_child(json_object(data, what), platform, what)
    if media not in IMAGE_TYPES:
        raise RegistryError(f"{what} is of type {media!r}, not an image manifest")
    return Entry(platform, got, len(data), media)


def decide_index(
    lay: IndexLayout,
    decisions: dict[str, Decision],
    registries: Registries,
    warn: Callable[[str], None],
    *,
    offline: bool = False,
) -> IndexDecision:
    """Whether the index stands complete, from the platforms' Decisions and one look at it."""
    from layerkit.build.registry import ImageRef, json_object

    def decided(action: IndexAction, digest: str | None = None) -> IndexDecision:
        return IndexDecision(action, lay.hash, lay.ref, lay.extra_tags, lay.address, digest, decisions)

    if offline or any(d.action == "unchecked" for d in decisions.values()):
        return decided("unchecked")
    digest = registries.digest(lay.ref)
    if ImageRef.parse(lay.ref).registry in registries.down:
        return decided("unchecked")
    if digest is None:
        return decided("build")
    incomplete = [p for p, d in decisions.items() if d.action != "found" or d.found_at != d.image]
    if incomplete:
        warn(
            f"warning: {lay.ref} is in the registry without the image of {', '.join(incomplete)}: building it"
        )
        return decided("build", digest)
    ref = ImageRef.parse(lay.ref)
    data, _, _ = registries.client.get_manifest(ImageRef(ref.registry, ref.repository, None, digest))
    listed = entries_of(json_object(data, f"registry {ref.registry}: index {lay.ref}"), decisions, lay.ref)
    for p, d in decisions.items():
        assert d.found_digest is not None
        if listed.get(p) != descriptor(registries.client, d.image, d.found_digest, p).digest:
            warn(f"warning: {lay.ref} does not list the image of {p} as it is now: putting the index again")
            return decided("build", digest)
    return decided("found", digest)


def decide_platforms(
    renders: Sequence[Rendered],
    opts: BuildOptions,
    warn: Callable[[str], None],
    *,
    offline: bool = False,
) -> tuple[IndexLayout, IndexDecision, Registries]:
    """Each platform's Decision (as `build --platform P` decides it) and the index's."""
    from layerkit.build.decisions import decide
    from layerkit.build.lookup import credentials_for, layout, registries_for
    from layerkit.build.signing import gate_for
    from layerkit.pipeline import renders_index_hash

    popts = platform_options(opts)
    first = renders[0]
    lay = index_layout(first, renders_index_hash(renders), opts)
    require_registry(lay, opts)
    one = layout(first, popts)
    creds = credentials_for(first, one)
    registries = registries_for(one, creds, warn)
    decisions: dict[str, Decision] = {}
    for r in renders:
        gate = None if offline else gate_for(r, opts.require_signature, creds, warn)
        decisions[r.plan.platform] = decide(
            layout(r, popts), registries, popts, warn, offline=offline, accept=gate
        )
    return lay, decide_index(lay, decisions, registries, warn, offline=offline), registries


def build_index(
    renders: Sequence[Rendered],
    opts: BuildOptions,
    build_one: Callable[[Rendered, BuildOptions], BuildResult],
    note: Callable[[str], None],
) -> BuildResult:
    """Decide; unless the index stands complete, build (or reuse) each platform with
    `build_one` (api's: warnings, the build, signatures and SBOM), then put the index."""
    from layerkit.build.builder import BuildResult

    started = time.monotonic()
    warnings: list[str] = []

    def warn(message: str) -> None:
        if message not in warnings:
            warnings.append(message)
            note(message)

    lay, idx, registries = decide_platforms(renders, opts, warn)
    result = BuildResult(hash=lay.hash, image=lay.ref, action="built", warnings=warnings)
    if idx.action == "found":
        result.action, result.source, result.digest = "found", lay.ref, idx.digest
        result.platforms = {p: _found(d, r) for (p, d), r in zip(idx.platforms.items(), renders, strict=True)}
        note(f"{lay.ref}: found (the index and each platform's image); nothing to build")
        result.seconds = time.monotonic() - started
        return result
    popts = platform_options(opts)
    for r in renders:
        done = result.platforms[r.plan.platform] = build_one(r, popts)
        warnings.extend(w for w in done.warnings if w not in warnings)
    if not all(r.pushed or r.action == "found" for r in result.platforms.values()):
        warn(f"warning: {lay.ref} is not pushed: not every platform's image is in the registry")
        result.seconds = time.monotonic() - started
        return result
    t0 = time.monotonic()
    result.digest = put_index(lay, {p: r.image for p, r in result.platforms.items()}, registries, note)
    result.timings["push index"] = round(time.monotonic() - t0, 3)
    result.pushed = True
    result.seconds = time.monotonic() - started
    return result


def put_index(
    lay: IndexLayout, images: dict[str, str], registries: Registries, note: Callable[[str], None]
) -> str:
    """Put the index over each platform's image as the registry names it now, at the index
    hash, then the name tags (same bytes); its digest."""
    from layerkit.build.registry import ImageRef

    entries = []
    for p, ref in sorted(images.items()):
        digest = registries.digest(ref)
        if digest is None:
            raise RegistryError(f"{ref} is not in the registry after its build: cannot list it in {lay.ref}")
        entries.append(descriptor(registries.client, ref, digest, p))
    data = document(entries, lay.hash)
    digest = ""
    for ref in lay.refs:
        note(f"pushing {ref} (image index: {', '.join(sorted(images))})")
        digest = registries.client.push_manifest(ImageRef.parse(ref), data, INDEX_TYPE)
    return digest


def _found(d: Decision, r: Rendered) -> BuildResult:
    from layerkit.build.builder import BuildResult

    return BuildResult(
        hash=r.hash.hash,
        image=d.uses,
        action="found",
        source=d.found_at,
        digest=d.found_digest,
        stages={s.stage: s.ref for s in d.stage_images if s.exists},
        decision=d,
    )
