"""What `layerkit build` does for one environment, decided once: `plan --json` prints it and
`build` carries it out (builder.py executes a Decision; it looks nothing up itself).

The decision asks the registry (manifest HEADs) and, registry-less, the local engine; no
BuildKit daemon is needed and nothing is changed. `offline` asks nothing. The document's
shape is layerkit/schemas/plan-1.schema.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from layerkit.errors import DaemonError

if TYPE_CHECKING:
    from layerkit.build.lookup import Accept, Layout, Registries
    from layerkit.build.options import BuildOptions
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
    exists: bool | None  # None: not asked (offline, the registry was down, or nothing to build)
    cache: str = ""  # its registry cache
    cache_exists: bool | None = None
    # A build solves and pushes it (with its cache); an engine without registry caches
    # (dockerd's classic store) needs only the image: see solved().
    build: bool = False

    def solved(self, registry_cache: bool) -> bool:
        return self.build and (registry_cache or not self.exists)

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "ref": self.ref,
            "exists": self.exists,
            "cache": self.cache,
            "cache_exists": self.cache_exists,
            "build": self.build,
        }


@dataclass(frozen=True)
class Copy:
    """One copy into the workspace registry: `digest` (what `src` named when it was looked up
    and, under a gate, verified) is fetched by digest and tagged `dst`."""

    src: str
    dst: str
    digest: str

    def to_json(self) -> dict[str, object]:
        return {"from": self.src, "to": self.dst, "digest": self.digest}


@dataclass(frozen=True)
class Decision:
    """found: use ``found_at`` as it is; copy: ``copies`` (stage images first, the image
    last); build: solve the image, then the stage images marked ``build``, then publish the
    image; unchecked: the registry could not be asked, so build and push nothing."""

    action: Action
    found_at: str | None
    image: str  # the workspace's <repository>:<hash>
    tags: tuple[str, ...]
    registry: str | None
    push: bool
    stage_images: tuple[StageImage, ...]
    cache_from: tuple[str, ...]  # images imported as cache
    registry_caches: tuple[str, ...]  # registry caches imported (engines that use them)
    cache_exports: tuple[str, ...]  # registry caches exported (engines that export them)
    copies: tuple[Copy, ...] = ()
    found_digest: str | None = None  # what found_at named when looked up (and verified)

    @property
    def uses(self) -> str:
        """The image a run uses: the one found (maybe in a global registry), else the workspace's."""
        return self.found_at if self.action == "found" and self.found_at else self.image

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "found_at": self.found_at,
            "image": self.image,
            "tags": list(self.tags),
            "registry": self.registry,
            "push": self.push,
            "stage_images": [s.to_json() for s in self.stage_images],
            "cache_from": list(self.cache_from),
            "registry_caches": list(self.registry_caches),
            "cache_exports": list(self.cache_exports),
            "copies": [c.to_json() for c in self.copies],
            "found_digest": self.found_digest,
        }


def decide(
    lay: Layout,
    registries: Registries,
    opts: BuildOptions,
    warn: Callable[[str], None],
    *,
    offline: bool = False,
    accept: Accept | None = None,
) -> Decision:
    """The one place found/copy/build is decided, for `plan` and `build` alike.
    `accept(ref, digest)`: whether an image may be reused, as found, copied or as a cache
    source (signing.signature_gate under --require-signature); None accepts every image."""
    from layerkit.build.lookup import Found, find_existing, under

    main, has_registry = lay.main, lay.address is not None
    checked = not offline
    found: Found | None = None
    if checked and not opts.force:
        try:
            found = find_existing(lay, registries, opts.addr, accept)
        except DaemonError as exc:
            # Registry-less images live in the local engine; an engine that is not running
            # leaves the answer open instead of failing the plan (a build then fails to reach it).
            warn(f"warning: {exc}; cannot tell whether the image exists")
            checked = False

    def down() -> bool:
        return lay.workspace_host in registries.down

    if found is not None:
        ref = found.ref
        # A workspace registry that is down gets no copy: the global image is used as it is.
        copy = found.where == "global" and has_registry and not down()
        stages = tuple(
            StageImage(t.stage or "", t.ref, True if found.where == "workspace" else None, t.cache_ref)
            for t in lay.targets[1:]
        )
        copies: tuple[Copy, ...] = ()
        if copy and found.digest:
            sources = under(ref.rsplit(":", 1)[0], lay)
            # Stage images first: the image, which the next run finds, arrives last.
            pairs = zip(sources[1:], lay.targets[1:], found.stage_digests, strict=True)
            copies = tuple(Copy(src.ref, dst.ref, digest) for src, dst, digest in pairs)
            copies += (Copy(ref, main.ref, found.digest),)
        return Decision(
            action="copy" if copy else "found",
            found_at=ref,
            image=main.ref,
            tags=main.refs[1:],
            registry=lay.address,
            push=copy,
            stage_images=stages,
            cache_from=(),
            registry_caches=(),
            cache_exports=(),
            copies=copies,
            found_digest=found.digest,
        )

    def exists(ref: str) -> bool | None:
        if not checked or not has_registry or down():
            return None
        return registries.exists(ref)

    refused: set[str] = set()

    def usable(ref: str) -> bool | None:
        # An image the gate refuses is not reused, not even as a cache source: it is rebuilt
        # (the gate has said why).
        if not checked or not has_registry or down():
            return None
        digest = registries.digest(ref)
        if digest is not None and accept is not None and not accept(ref, digest):
            refused.add(ref)
            return False
        return digest is not None

    looked = [(t, usable(t.ref), exists(t.cache_ref)) for t in lay.targets]
    main_exists = looked[0][1]
    # Earlier builds under the name-version tag seed the cache only as the gate allows.
    prior = [ref for ref in (f"{main.repo}:{t}" for t in main.extra_tags) if usable(ref)]
    push = opts.push and has_registry and checked and not down()
    action: Action = "build" if checked and not down() else "unchecked"
    if has_registry and opts.push and down():
        warn(f"warning: {main.ref} is not pushed: its registry is unreachable")
    stages = tuple(
        StageImage(t.stage or "", t.ref, e, t.cache_ref, c, push and not (e and c)) for t, e, c in looked[1:]
    )
    missing = ", ".join(s.ref for s in stages if s.exists is False and s.ref not in refused)
    if main_exists and missing and not opts.force:
        warn(
            f"warning: {main.ref} is in the registry without {missing}: building it again, which pushes them"
        )
    # Existing stage images, earlier builds of this environment (same name-version tag) and,
    # when it is there but incomplete or forced, the image this build replaces seed the cache.
    cache_from = [s.ref for s in stages if s.exists] + prior + ([main.ref] if main_exists else [])
    exports = [main.cache_ref, *(s.cache for s in stages if s.build)] if push else []
    return Decision(
        action=action,
        found_at=None,
        image=main.ref,
        tags=main.refs[1:],
        registry=lay.address,
        push=push,
        stage_images=stages,
        cache_from=tuple(sorted(set(cache_from))),
        registry_caches=tuple(t.cache_ref for t, _, c in looked if c),
        cache_exports=tuple(exports),
    )


@dataclass(frozen=True)
class EnvDecision:
    """One environment of the plan document: its inputs and hash, and the Decision."""

    spec: str
    name: str | None
    version: str | None
    files: tuple[str, ...]  # every spec file merged in, root last
    lock: str | None
    lock_fresh: bool | None  # None: no lock, or one without layerkit's spec hash
    platform: str
    hash: str
    stage_hashes: dict[str, str]
    decision: Decision
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def action(self) -> Action:
        return self.decision.action

    @property
    def image(self) -> str:
        return self.decision.image

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
            **self.decision.to_json(),
            "steps": [{"stage": s.stage, "instruction": s.instruction, "text": s.text} for s in self.steps],
            "warnings": list(self.warnings),
        }


def decide_env(spec: Path, rendered: Rendered, opts: BuildOptions, *, offline: bool = False) -> EnvDecision:
    from layerkit.build.lookup import credentials_for, layout, registries_for
    from layerkit.integrate.discover import display
    from layerkit.lock.solve import lock_inputs

    lay = layout(rendered, opts)
    warnings = list(rendered.warnings)
    creds = credentials_for(rendered, lay)
    registries = registries_for(lay, creds, warnings.append, "cannot tell which images it holds")
    gate = None
    if not offline:
        from layerkit.build.signing import gate_for

        gate = gate_for(rendered, opts.require_signature, creds, warnings.append)
    decision = decide(lay, registries, opts, warnings.append, offline=offline, accept=gate)
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
        decision=decision,
        steps=tuple(dockerfile_steps(rendered.dockerfile))
        if decision.action in ("build", "unchecked")
        else (),
        warnings=tuple(dict.fromkeys(warnings)),
    )
