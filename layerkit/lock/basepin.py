"""Base images in the lock: `layerkit lock` records the manifest digest of each floating base
ref (FROM of the base and runtime stages), renders pin them (`ref@digest`), and
`layerkit outdated` compares the recorded digests with what the registries serve now.

Pure lock logic: the refs (render/baserefs.py) and what the registries serve
(build/basedigests.py) are handed in by the caller, so the lock layer reaches neither up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from layerkit.lock.model import Lock

Status = Literal["current", "behind", "unpinned", "unknown"]


def unpinned_bases(refs: Sequence[str], lock: Lock) -> list[str]:
    """Of the floating base refs (render/baserefs.py), those a lock that pins bases has no
    digest for (the base changed)."""
    if not lock.base_digests:
        return []
    return [ref for ref in refs if lock.base_digest(ref) is None]


def resolve_for_lock(found: Mapping[str, str | Exception]) -> tuple[dict[str, str], list[str]]:
    """Of what the registries serve now (build/basedigests.py: ref -> digest or error), the
    digests to record in a new lock, and warnings for the refs that could not be resolved
    (an air-gapped lock still succeeds; its base images just stay floating)."""
    digests = {ref: d for ref, d in found.items() if isinstance(d, str)}
    warnings = [
        f"warning: base image {ref} is not pinned in the lock ({err}); "
        "renders use the tag until `layerkit lock` can reach its registry"
        for ref, err in sorted(found.items())
        if isinstance(err, Exception)
    ]
    return digests, warnings


@dataclass(frozen=True)
class BaseState:
    ref: str
    locked: str | None
    current: str | None
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class Outdated:
    spec: str
    lock: str | None
    bases: tuple[BaseState, ...]

    @property
    def behind(self) -> bool:
        return any(b.status == "behind" for b in self.bases)

    def to_json(self) -> dict[str, object]:
        return {
            "spec": self.spec,
            "lock": self.lock,
            "behind": self.behind,
            "bases": [
                {
                    "ref": b.ref,
                    "locked": b.locked,
                    "current": b.current,
                    "status": b.status,
                    "detail": b.detail,
                }
                for b in self.bases
            ],
        }


def outdated(spec: Path, lock: Lock | None, found: Mapping[str, str | Exception]) -> Outdated:
    """The recorded digests against ``found`` (ref -> what its registry serves now, or the error)."""
    refs = list(found)
    states = []
    for ref in refs:
        locked = lock.base_digest(ref) if lock else None
        now = found[ref]
        current = now if isinstance(now, str) else None
        if current is None:
            states.append(BaseState(ref, locked, None, "unknown", str(now)))
        elif locked is None:
            why = "no lock" if lock is None else "the lock records no digest for it; run `layerkit lock`"
            states.append(BaseState(ref, None, current, "unpinned", why))
        else:
            states.append(BaseState(ref, locked, current, "current" if locked == current else "behind"))
    return Outdated(str(spec), lock.source if lock else None, tuple(states))
