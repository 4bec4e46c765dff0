"""`layerkit plan`: what `layerkit build` would do, as versioned JSON for other build tools.

Same decisions as the build (layerkit.build.lookup.layout/find_existing), no daemon needed and
nothing changed: the registry is only asked (manifest HEAD) whether the images exist;
`offline` asks nothing. The document's shape is layerkit/schemas/plan-1.schema.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from layerkit.errors import DaemonError

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions
    from layerkit.pipeline import Rendered

PLAN_SCHEMA = "layerkit.plan/1"
Action = Literal["found", "copy", "build", "unchecked"]


@dataclass(frozen=True)
class Step:
    stage: str
    instruction: str
    text: str


def dockerfile_steps(dockerfile: str) -> list[Step]:
    """Instructions by stage; continuation lines joined, comments dropped."""
    from layerkit.render.instructions import instructions, read_from, split_name

    steps: list[Step] = []
    stage = ""
    for ins in instructions(dockerfile):
        instruction, text = split_name(ins.text)
        if (start := read_from(ins.text)) is not None:
            stage = start.stage or start.image
        steps.append(Step(stage, instruction.upper(), text.strip()))
    return steps


@dataclass(frozen=True)
class StageImage:
    stage: str
    ref: str
    exists: bool | None  # None: not asked (offline, or the registry was down)


@dataclass(frozen=True)
class EnvDecision:
    spec: str
    name: str | None
    version: str | None
    files: tuple[str, ...]  # every spec file merged in, root last
    lock: str | None
    lock_fresh: bool | None  # None: no lock, or one without layerkit's spec hash
    platform: str
    hash: str
    stage_hashes: dict[str, str]
    image: str
    tags: tuple[str, ...]
    registry: str | None
    action: Action
    found_at: str | None
    stage_images: tuple[StageImage, ...]
    cache_from: tuple[str, ...]
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "spec": self.spec,
            "name": self.name,
            "version": self.version,
            "inputs": {
                "files": list(self.files),
                "lock": self.lock,
                "lock_fresh": self.lock_fresh,
                "platform": self.platform,
            },
            "hash": self.hash,
            "stages": dict(sorted(self.stage_hashes.items())),
            "image": self.image,
            "tags": list(self.tags),
            "registry": self.registry,
            "action": self.action,
            "found_at": self.found_at,
            "stage_images": [{"stage": s.stage, "ref": s.ref, "exists": s.exists} for s in self.stage_images],
            "cache_from": list(self.cache_from),
            "steps": [{"stage": s.stage, "instruction": s.instruction, "text": s.text} for s in self.steps],
            "warnings": list(self.warnings),
        }


def decide_env(spec: Path, rendered: Rendered, opts: BuildOptions, *, offline: bool = False) -> EnvDecision:
    from layerkit.build.lookup import credentials_for, find_existing, layout, registries_for
    from layerkit.integrate.discover import display
    from layerkit.lock.solve import lock_inputs

    lay = layout(rendered, opts)
    warnings = list(rendered.warnings)
    registries = registries_for(
        lay, credentials_for(rendered, lay), warnings.append, "cannot tell which images it holds"
    )
    found: tuple[str, str] | None = None
    checked = not offline
    gate = None
    if checked:
        from layerkit.build.signing import gate_for

        creds = credentials_for(rendered, lay)
        gate = gate_for(rendered, opts.require_signature, registries.client, creds, warnings.append)
    if checked:
        try:
            found = find_existing(lay, registries, opts.addr, gate)
        except DaemonError as exc:
            # Registry-less images live in the local engine; an engine that is not running
            # leaves the answer open instead of failing the plan.
            warnings.append(f"warning: {exc}; cannot tell whether the image exists")
            checked = False
    if lay.workspace_host in registries.down:
        checked = False
    action: Action
    if found is not None:
        action = "copy" if found[0] == "global" and lay.address else "found"
    else:
        action = "build" if checked else "unchecked"

    def exists(ref: str) -> bool | None:
        if not checked or lay.address is None:
            return None
        return registries.exists(ref)

    stage_images = tuple(StageImage(t.stage or "", t.ref, exists(t.ref)) for t in lay.targets[1:])
    prior = tuple(f"{lay.main.repo}:{t}" for t in lay.main.extra_tags)
    cache_from = [s.ref for s in stage_images if s.exists]
    cache_from += [ref for ref in prior if exists(ref)] if action == "build" else []
    lk = rendered.lock
    fresh = None
    if lk is not None and lk.spec_hash is not None:
        fresh = lk.spec_hash == lock_inputs(rendered.checked).spec_hash()
    s = rendered.checked.resolved.spec
    return EnvDecision(
        spec=display(spec),
        name=s.name,
        version=s.version,
        # Below the working directory: relative, so the document is the same on every checkout.
        files=tuple(
            display(layer.path) if layer.path else layer.source for layer in rendered.checked.resolved.layers
        ),
        lock=lk.source if lk else None,
        lock_fresh=fresh,
        platform=rendered.plan.platform,
        hash=rendered.hash.hash,
        stage_hashes=dict(rendered.hash.stages),
        image=lay.main.ref,
        tags=lay.main.refs[1:],
        registry=lay.address,
        action=action,
        found_at=found[1] if found else None,
        stage_images=stage_images,
        cache_from=tuple(sorted(set(cache_from))),
        steps=tuple(dockerfile_steps(rendered.dockerfile)) if action in ("build", "unchecked") else (),
        warnings=tuple(dict.fromkeys(warnings)),
    )


def plan_document(plans: list[EnvDecision]) -> dict[str, object]:
    return {"schema": PLAN_SCHEMA, "environments": [p.to_json() for p in plans]}
