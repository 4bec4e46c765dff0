"""An environment record from a render: the hash, the locked packages of every platform the
lock covers, the base image (+ digest), and the spec's identity and sources."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit import __version__
from layerkit.envs.models import BaseImage, EnvRecord, LockInfo, Package, SourceFile
from layerkit.spec.imageref import split_ref

if TYPE_CHECKING:
    from layerkit.lock.model import LockedPackage
    from layerkit.pipeline import Rendered


def _split(ref: str | None) -> tuple[str | None, str | None]:
    if ref is None:
        return None, None
    name, tag, digest = split_ref(ref)
    return f"{name}:{tag}" if tag else name, digest


def _package(p: LockedPackage) -> Package:
    checksum = f"sha256:{p.sha256}" if p.sha256 else f"md5:{p.md5}" if p.md5 else ""
    return Package(manager=p.manager, name=p.name, version=p.version, build=p.build, checksum=checksum)


def _sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _relative(source: str, root: Path | None) -> str:
    """A lock path as seen from the root spec: the same on every machine."""
    path = Path(source)
    if root is None:
        return path.name
    try:
        return os.path.relpath(path.resolve(), root.resolve().parent)
    except ValueError:
        return path.name


def build_record(
    rendered: Rendered,
    *,
    image: str,
    version: str,
    now: datetime | None = None,
    digests: dict[str, str] | None = None,
    index: tuple[str, str | None] | None = None,
    env_hash: str | None = None,
) -> EnvRecord:
    """``digests``: platform -> the manifest digest its image has in the registry; ``index``:
    a multi-platform spec's index ref and digest (None: not pushed yet); ``env_hash``: the
    hash that names the image (a multi-platform spec's index hash; default: the render's)."""
    checked, plan = rendered.checked, rendered.plan
    spec = checked.resolved.spec
    base_image, base_digest = _split(plan.base_ref)
    runtime, runtime_digest = _split(plan.runtime_ref)
    base = BaseImage(
        flavour=checked.image.id if checked.image else None,
        image=base_image,
        digest=base_digest,
        runtime=runtime,
        runtime_digest=runtime_digest,
        dockerfile_sha256=hashlib.sha256(plan.base_dockerfile.encode()).hexdigest()
        if plan.base_dockerfile is not None
        else None,
    )
    lk = rendered.lock
    platforms: dict[str, tuple[Package, ...]] = {}
    if lk is not None:
        for platform in lk.platforms:
            pkgs = lk.for_platform(platform, "conda") + lk.for_platform(platform, "pip")
            platforms[platform] = tuple(
                sorted((_package(p) for p in pkgs), key=lambda p: (p.name, p.manager, p.version, p.build))
            )
    conda = spec.conda
    requested = [*(conda.dependencies or ()), *(f"pip:{p}" for p in conda.pip or ())] if conda else []
    layers = checked.resolved.layers
    # plan.sources are relative to the root spec (the same on every machine); the layers
    # in the same order know where to read each file's bytes.
    sources = tuple(
        SourceFile(path=src, sha256=_sha256(layer.path))
        for src, layer in zip(plan.sources, layers, strict=False)
    )
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    return EnvRecord(
        name=spec.name,
        version=version,
        description=spec.description,
        hash=env_hash or rendered.hash.hash,
        stages=dict(sorted(rendered.hash.stages.items())),
        image=image,
        base=base,
        platforms=dict(sorted(platforms.items())),
        channels=tuple(conda.channels or ()) if conda else (),
        requested=tuple(sorted(requested)),
        apt=tuple(sorted(plan.apt_base)),
        env=dict(sorted((spec.env or {}).items())),
        sources=sources,
        lock=LockInfo(path=_relative(lk.source, checked.resolved.root.path), spec_hash=lk.spec_hash)
        if lk is not None
        else None,
        registered_at=when.isoformat().replace("+00:00", "Z"),
        layerkit_version=__version__,
        digests=dict(sorted((digests or {}).items())),
        index=index[0] if index else None,
        index_digest=index[1] if index else None,
    )
