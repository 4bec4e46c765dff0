"""`plan` for a spec with several platforms: one environment entry for the image index,
with each platform's own entry (decisions.EnvDecision, as `plan --platform P` prints it)
under `platforms`. The index entry has every field a one-platform entry has (layerkit.plan/1
only ever adds fields): its hash, image and tags are the index's; it has no stages or steps
of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from layerkit.build.decisions import EnvDecision
    from layerkit.build.multiplatform import IndexAction, IndexDecision
    from layerkit.build.options import BuildOptions
    from layerkit.pipeline import Rendered


@dataclass(frozen=True)
class IndexPlan:
    spec: str
    platforms: tuple[EnvDecision, ...]  # in the spec's order
    decision: IndexDecision
    warnings: tuple[str, ...]

    @property
    def action(self) -> IndexAction:
        return self.decision.action

    @property
    def image(self) -> str:
        return self.decision.image

    def to_json(self) -> dict[str, object]:
        first, d = self.platforms[0], self.decision
        found = d.action == "found"
        return {
            "spec": self.spec,
            "name": first.name,
            "version": first.version,
            "inputs": {
                "files": list(first.files),
                "lock": first.lock,
                "lock_fresh": first.lock_fresh,
                "platform": first.platform,
                "platforms": [p.platform for p in self.platforms],
            },
            "hash": d.hash,
            "stages": {},
            "image": d.image,
            "tags": [f"{d.image.rsplit(':', 1)[0]}:{t}" for t in d.tags],
            "registry": d.registry,
            "push": d.action == "build",
            "action": d.action,
            "found_at": d.image if found else None,
            "found_digest": d.digest if found else None,
            "stage_images": [],
            "cache_from": [],
            "registry_caches": [],
            "cache_exports": [],
            "copies": [],
            "steps": [],
            "warnings": list(self.warnings),
            "index": d.to_json(),
            "platforms": [p.to_json() for p in self.platforms],
        }


def plan_index(spec: Path, renders: tuple[Rendered, ...], opts: BuildOptions, *, offline: bool) -> IndexPlan:
    from layerkit.build.decisions import decide_env
    from layerkit.build.lookup import credentials_for, layout, registries_for
    from layerkit.build.multiplatform import decide_index, index_layout, platform_options, require_registry
    from layerkit.integrate.discover import display
    from layerkit.pipeline import renders_index_hash

    popts = platform_options(opts)
    first = renders[0]
    lay = index_layout(first, renders_index_hash(renders), opts)
    require_registry(lay, opts)
    envs = tuple(decide_env(spec, r, popts, offline=offline) for r in renders)
    warnings = [w for e in envs for w in e.warnings]
    one = layout(first, popts)
    registries = registries_for(
        one, credentials_for(first, one), warnings.append, "cannot tell which images it holds"
    )
    decision = decide_index(
        lay, {e.platform: e.decision for e in envs}, registries, warnings.append, offline=offline
    )
    return IndexPlan(display(spec), envs, decision, tuple(dict.fromkeys(warnings)))


def plan_document(plans: Sequence[EnvDecision | IndexPlan]) -> dict[str, object]:
    """`plan --json`'s versioned document: here, not in decisions.py, which IndexPlan builds on."""
    from layerkit.build.decisions import PLAN_SCHEMA

    return {"schema": PLAN_SCHEMA, "environments": [p.to_json() for p in plans]}
