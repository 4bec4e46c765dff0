"""`layerkit.api`'s environment versions: list, show and diff records in the registry
(layerkit.envs). Import them from layerkit.api (`env_register` lives there: it renders)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from layerkit.envs.diff import EnvDiff
    from layerkit.envs.models import EnvRecord
    from layerkit.envs.ops import Listing


def env_list(
    name: str | None = None,
    *,
    registry: str | None = None,
    spec: Path | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Listing:
    """Registered names and their versions (the registry's catalog and tags); with ``name``,
    that name's versions with their records. ``spec`` supplies the registry section."""
    from layerkit.envs.ops import listing

    return listing(name, registry, spec, on_warning or (lambda _m: None))


def env_show(
    ref: str,
    *,
    registry: str | None = None,
    spec: Path | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> EnvRecord:
    """The record of ``NAME[@VERSION]`` (default: the latest version). Falls back to the
    local index, with a warning, when the registry is unreachable."""
    from layerkit.envs.ops import show

    return show(ref, registry, spec, on_warning or (lambda _m: None))


def env_sbom(
    ref: str,
    *,
    registry: str | None = None,
    spec: Path | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> bytes:
    """The CycloneDX JSON SBOM `layerkit build` attached to the image of ``NAME[@VERSION]``
    (read from the registry, checked against the image's digest)."""
    from layerkit.envs.ops import show_sbom

    return show_sbom(ref, registry, spec, on_warning or (lambda _m: None))


def env_diff(
    old: str,
    new: str,
    *,
    registry: str | None = None,
    spec: Path | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> EnvDiff:
    """Packages added, removed and changed per platform, base image, apt and env var changes
    between two registered versions (``NAME@V1``, ``NAME@V2``)."""
    from layerkit.envs.ops import diff_refs

    return diff_refs(old, new, registry, spec, on_warning or (lambda _m: None))
