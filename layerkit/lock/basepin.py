"""Base images in the lock: `layerkit lock` records the manifest digest of each floating base
ref (FROM of the base and runtime stages), renders pin them (`ref@digest`), and
`layerkit outdated` compares the recorded digests with what the registries serve now."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from layerkit.errors import RegistryError, RegistryUnreachable
from layerkit.lock.model import Lock
from layerkit.lock.unified import DIGEST
from layerkit.spec.validate import Checked

if TYPE_CHECKING:
    from layerkit.build.registry import RegistryClient

Status = Literal["current", "behind", "unpinned", "unknown"]


def base_refs(checked: Checked) -> list[str]:
    """The FROM refs a build would pull (base, runtime, installer) that no digest pins yet (mirrors applied)."""
    from layerkit.render.plan import build_plan

    if checked.resolved.spec.user_managed:
        return []
    plan = build_plan(checked, None)
    installer = plan.env_install.installer_ref if plan.env_install else None
    return sorted({r for r in (plan.base_ref, plan.runtime_ref, installer) if r and "@" not in r})


def unpinned_bases(checked: Checked, lock: Lock) -> list[str]:
    """Floating base refs a lock that pins bases has no digest for (the base changed)."""
    if not lock.base_digests:
        return []
    return [ref for ref in base_refs(checked) if lock.base_digest(ref) is None]


def _client(checked: Checked, timeout: float) -> RegistryClient:
    from layerkit.build.lookup import credentials_lookup
    from layerkit.build.registry import ImageRef, RegistryClient

    reg = checked.resolved.spec.registry
    host = ImageRef.parse(f"{reg.address}/x").registry if reg and reg.address else None
    base = checked.resolved.spec.base
    return RegistryClient(credentials_lookup(reg, host, base.registry if base else None), timeout=timeout)


def current_digests(checked: Checked, refs: list[str], timeout: float = 5.0) -> dict[str, str | Exception]:
    """ref -> the digest its registry serves now, or the RegistryError that stopped us."""
    from layerkit.build.registry import ImageRef

    client = _client(checked, timeout)
    out: dict[str, str | Exception] = {}
    down: dict[str, Exception] = {}
    for ref in refs:
        image = ImageRef.parse(ref)
        if image.registry in down:
            out[ref] = down[image.registry]
            continue
        try:
            info = client.head_manifest(image)
        except RegistryUnreachable as exc:
            out[ref] = down[image.registry] = exc
            continue
        except RegistryError as exc:
            out[ref] = exc
            continue
        if info is None:
            out[ref] = RegistryError(f"{ref}: no such image in its registry")
        elif not DIGEST.fullmatch(info.digest):
            out[ref] = RegistryError(f"{ref}: the registry sent no sha256 content digest")
        else:
            out[ref] = info.digest
    return out


def resolve_for_lock(checked: Checked) -> tuple[dict[str, str], list[str]]:
    """Digests to record in a new lock, and warnings for the refs that could not be resolved
    (an air-gapped lock still succeeds; its base images just stay floating)."""
    found = current_digests(checked, base_refs(checked))
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


def outdated(spec: Path, checked: Checked, lock: Lock | None) -> Outdated:
    refs = base_refs(checked)
    found = current_digests(checked, refs)
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
