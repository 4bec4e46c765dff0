"""What to ask BuildKit for: image names, stage targets, exporter and cache settings.

Pure decisions (no I/O), so each backend's request is unit-tested without a daemon:

- dockerd's embedded BuildKit on the classic image store: ``moby`` exporter (then a push through the Engine API),
  ``inline`` cache export, cache import through the frontend attr ``cache-from``;
- standalone buildkitd, and dockerd whose builder is BuildKit's containerd worker (the
  containerd image store, Docker 24+) when there is a registry to push to: ``image`` exporter
  with ``push=true``, ``registry`` cache export with ``mode=max`` (every intermediate layer)
  and registry cache imports. ``embedded`` below means the first kind of request.

Registry caches are per target: each solve exports to its own ``<repository>-cache:<label>-<hash>``
(label ``image``, ``base`` or ``env``; hash that target's content hash) and imports those of
every target of the build. A base-only change leaves the env stage's hash, so its cache, as it
was; a name never moves to other content, so no export can feed a later build wrong layers.

Images: ``<address>/<repository>:<hash>`` is the environment; each shareable stage is
``<address>/<repository>-<stage>:<stage hash>``, so another environment on the same base
(same stage hash) finds it in the registry. Without a registry address, images stay in
the local engine as ``<repository>:<hash>``.

Reproducible images (same Dockerfile and context, same manifest digest): where the daemon's
BuildKit has its own image exporter (buildkitd; dockerd on the containerd image store), every
solve gets ``SOURCE_DATE_EPOCH`` (config and history ``created``) and ``rewrite-timestamp``
(file mtimes in the new layers), and no inline cache (its records carry build times). dockerd's
``moby`` exporter always unpacks, which BuildKit refuses with ``rewrite-timestamp`` ("conflicts
with unpack"), so a registry-less build there uses the image exporter too, under the name's
canonical form (what dockerd looks up); dockerd unpacks it when a container first uses it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from layerkit.errors import SpecError
from layerkit.render.blocks.assemble import SOURCE_DATE_EPOCH
from layerkit.spec.imageref import ImageRef, as_tag, is_loopback, is_repository_path

Network = Literal["default", "host", "none"]
DEFAULT_REPOSITORY = "layerkit"
SHARED_STAGES = ("base", "env")
# The value every stage of the Dockerfile declares (render/blocks/assemble.py says why this
# one); BuildKit takes it from the build arg for the config's dates and the layers' file mtimes.
REPRODUCIBLE_EPOCH = SOURCE_DATE_EPOCH
# BuildKit releases whose image exporter takes rewrite-timestamp; dockerd's embedded BuildKit
# reports none ("v0.0.0+unknown"): taken as able (Docker 26 is 0.13; 24 and 25 ignore the
# option, and their digests then differ from build to build, as without it).
_REWRITE_TIMESTAMP_SINCE = (0, 13)


@dataclass(frozen=True)
class Target:
    """One image to produce: the environment (``stage`` None) or a shared stage."""

    stage: str | None
    hash: str
    repo: str  # "localhost:5000/team/layerkit" or, registry-less, "layerkit"
    extra_tags: tuple[str, ...] = ()
    cache_repo: str = ""  # where registry caches go: "<environment's repository>-cache"

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.hash}"

    @property
    def refs(self) -> tuple[str, ...]:
        return (self.ref, *(f"{self.repo}:{t}" for t in self.extra_tags))

    @property
    def label(self) -> str:
        return self.stage or "image"

    @property
    def cache_ref(self) -> str:
        """This target's registry cache (mode=max), named by its own hash."""
        return f"{self.cache_repo or self.repo + '-cache'}:{self.label}-{self.hash}"


@dataclass(frozen=True)
class SolveArgs:
    frontend_attrs: dict[str, str]
    exporter: str
    exporter_attrs: dict[str, str]
    cache_imports: tuple[tuple[str, dict[str, str]], ...]
    cache_exports: tuple[tuple[str, dict[str, str]], ...]
    entitlements: tuple[str, ...]


def name_tag(name: str | None, version: str | None) -> str | None:
    """``name-version`` as a valid tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``), or None."""
    if not name:
        return None
    raw = f"{name}-{version}" if version else name
    return as_tag(raw)


def repository(address: str | None, repo: str | None) -> str:
    name = (repo or DEFAULT_REPOSITORY).strip("/")
    if not is_repository_path(name):
        raise SpecError(f"registry.repository {name!r}: use lower-case letters, digits and . _ - /")
    return f"{address.rstrip('/')}/{name}" if address else name


def targets(
    repo: str, env_hash: str, stage_hashes: dict[str, str], extra_tags: Sequence[str] = ()
) -> list[Target]:
    """The environment first (its solve shows what really ran), then its shared stages."""
    cache = f"{repo}-cache"
    out = [Target(None, env_hash, repo, tuple(extra_tags), cache)]
    for stage in SHARED_STAGES:
        if stage in stage_hashes:
            out.append(Target(stage, stage_hashes[stage], f"{repo}-{stage}", cache_repo=cache))
    return out


def is_local_registry(repo: str) -> bool:
    host, slash, _ = repo.partition("/")
    return bool(slash) and is_loopback(host)


def reproducible_epoch(exporters: frozenset[str], version: str | None) -> int | None:
    """The SOURCE_DATE_EPOCH a daemon's builds get, or None where its images cannot be
    reproducible: no image exporter (dockerd's classic image store has only ``moby``, which
    unpacks), or a BuildKit that names a release before rewrite-timestamp."""
    if "image" not in exporters or version is None:  # None: no Info RPC, so BuildKit < 0.11
        return None
    release = _release(version)
    if release is not None and release < _REWRITE_TIMESTAMP_SINCE:
        return None
    return REPRODUCIBLE_EPOCH


def _release(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of "v0.13.2"; None when unknown (no Info, or dockerd's "v0.0.0+unknown")."""
    parts = (version or "").lstrip("v").split("+")[0].split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        return None
    release = (int(parts[0]), int(parts[1]))
    return None if release == (0, 0) else release


def _registry_cache(target: Target, *, rewrites: bool) -> dict[str, str]:
    """This target's registry cache export. Where the image exporter rewrites every layer it
    makes (rewrite-timestamp), no image ever reuses the cache's blobs, so they need not be gzip:
    zstd compresses the new layers several times faster (a cold build spent most of its cache
    export gzipping), and smaller. Layers it did not make (the base image's) keep theirs."""
    attrs = {"ref": target.cache_ref, "mode": "max"}
    if rewrites:
        attrs["compression"] = "zstd"
    return attrs


def solve_args(
    target: Target,
    *,
    embedded: bool,
    cache_from: Sequence[str],
    network: Network,
    push: bool,
    registry_caches: Sequence[str] = (),
    export_cache: bool = False,
    publish: bool = True,
    platform: str | None = None,
    epoch: int | None = None,
) -> SolveArgs:
    """Frontend, exporter and cache settings for one ``dockerfile.v0`` solve.

    ``cache_from``: image refs known to exist (stage images, a previous build). Without the
    moby exporter also ``registry_caches``, the registry caches known to exist (imported),
    and with ``export_cache`` and a push, this target's own (``Target.cache_ref``, mode=max).
    ``publish`` False: no exporter (the solve only builds and exports its registry cache), so
    no inline cache either, which rides in an exported image's config.
    ``platform``: the render's conda platform; BuildKit builds for it (``linux/arm64``), not
    for the daemon's own, on both backends (the dockerfile frontend reads the attr); the env
    stage's image excepted (built on the build platform, see below).
    ``epoch`` (``reproducible_epoch``'s, never with an engine lacking the image exporter): a
    reproducible image, exported by the image exporter even where ``embedded`` (see module doc).
    """
    attrs = {"filename": "Dockerfile"}
    # Not for the env stage's own solve: it is built on the build platform (FROM
    # --platform=$BUILDPLATFORM) whatever the target, and the frontend labels an image with
    # the platform it was asked for, so asked, an arm64 target's env stage image (amd64
    # userland, aarch64 /opt/env) would claim arm64. Unasked, its LLB is the same: so is its cache.
    if platform is not None and target.stage != "env":
        from layerkit.spec.ociplatform import oci

        attrs["platform"] = oci(platform)
    if target.stage:
        attrs["target"] = target.stage
        attrs["label:io.layerkit.stage"] = target.stage
        attrs["label:io.layerkit.stage-hash"] = target.hash
    entitlements: tuple[str, ...] = ()
    if network != "default":
        # dockerd 20.10's frontend rejects RUN --network; this is `docker build --network`.
        attrs["force-network-mode"] = network
        if network == "host":
            entitlements = ("network.host",)
    imports = [("registry", {"ref": ref}) for ref in sorted(set(cache_from))]
    exports: list[tuple[str, dict[str, str]]] = []
    if embedded:
        exporter, exp_attrs = "moby", {"name": ",".join(target.refs)}
        if cache_from:
            attrs["cache-from"] = ",".join(sorted(set(cache_from)))
        imports = []  # the frontend imports them itself; dockerd's controller needs nothing
        # Inline cache metadata rides in the image config: the only export dockerd has.
        exports.append(("inline", {}))
    else:
        exporter = "image"
        exp_attrs = {"name": ",".join(target.refs), "push": "true" if push else "false"}
        if push and is_local_registry(target.repo):
            exp_attrs["registry.insecure"] = "true"
        imports += [("registry", {"ref": ref}) for ref in sorted(set(registry_caches) - set(cache_from))]
        if export_cache and push:
            exports.append(("registry", _registry_cache(target, rewrites=epoch is not None)))
        if epoch is None:
            # An exporter that does not rewrite layers reuses the compressed blobs it has, and
            # an imported cache's may be zstd (a reproducible engine's, sharing the registry):
            # images stay gzip, which every Docker pulls.
            exp_attrs |= {"compression": "gzip", "force-compression": "true"}
        exports.append(("inline", {}))
        if imports:
            # Newer dockerfile frontends read the imports from this attr for their own solves.
            attrs["cache-imports"] = json.dumps(
                [{"Type": t, "Attrs": a} for t, a in imports], sort_keys=True, separators=(",", ":")
            )
    if epoch is not None:
        attrs["build-arg:SOURCE_DATE_EPOCH"] = str(epoch)
        # Inline cache records carry each build's time (createdAt) into the image config.
        exports = [e for e in exports if e[0] != "inline"]
        if embedded:
            # The moby exporter unpacks, which BuildKit refuses with rewrite-timestamp.
            exporter = "image"
            exp_attrs = {"name": ",".join(ImageRef.parse(r).canonical for r in target.refs)}
        exp_attrs["rewrite-timestamp"] = "true"
    if not publish:
        exporter, exp_attrs = "", {}
        exports = [e for e in exports if e[0] != "inline"]
    return SolveArgs(
        frontend_attrs=attrs,
        exporter=exporter,
        exporter_attrs=exp_attrs,
        cache_imports=tuple(imports),
        cache_exports=tuple(exports),
        entitlements=entitlements,
    )
