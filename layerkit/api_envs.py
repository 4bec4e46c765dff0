"""`layerkit.api`'s environment versions: register, list, show and diff records in the
registry (layerkit.envs). Import them from layerkit.api."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.lock.model import Lock

if TYPE_CHECKING:
    from layerkit.envs.diff import EnvDiff
    from layerkit.envs.models import EnvRecord
    from layerkit.envs.ops import Listing
    from layerkit.envs.register import Registered


def env_register(
    spec: Path,
    lock: Path | Lock | None = None,
    platform: str | None = None,
    auto_lock: bool = True,
    *,
    registry: str | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Registered:
    """Record the spec's environment (hash, locked packages per platform, base image, sources)
    as a new version of its name in the registry (``registry`` or the spec's address). An
    environment identical to a registered version is that version: nothing is written.
    Raises SpecError when the spec's ``version`` is taken by another hash, RegistryUnreachable
    when the registry is down (writes need it)."""
    from layerkit.api import render
    from layerkit.envs.ops import register_rendered

    warn = on_warning or (lambda _m: None)
    rendered = render(spec, lock, platform, auto_lock)
    for w in rendered.warnings:
        warn(w)
    done = register_rendered(rendered, registry, warn)
    for w in done.warnings:
        warn(w)
    return done


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
