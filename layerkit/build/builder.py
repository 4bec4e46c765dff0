"""``layerkit build``: render, skip by hash, solve through BuildKit, push.

Order of work, cheapest first:
1. render and hash (no daemon, no network);
2. decide (decisions.decide, the Decision `plan --json` prints): skip-by-hash HEADs the image
   and its stage images in the workspace registry, then in each global registry (found
   there: copied into the workspace registry); no daemon is contacted;
3. one build per hash at a time on this machine (a file lock); a run that had to wait for
   another decides again, since that run changed the registry, so concurrent runs build once;
4. carry the Decision out: solve the image (its Status stream says what really ran), then
   each stage image it marks ``build`` (all steps cached by then), pushed as its own image;
   the image itself reaches the registry last, since finding it ends later runs at step 2.

A registry that cannot be reached at the start is not fatal: the build goes on without cache
or push, with a warning. One that fails during the push or the cache export fails the build
(exit 3): nothing half-pushed is ever found, since a registry shows an image or cache only once
its manifest (uploaded last) is in. Credentials reach BuildKit only through the session's auth service and
the engine only per push call.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from layerkit.build.compat import without_copy_link
from layerkit.build.decisions import Decision, decide
from layerkit.build.lookup import Registries, credentials_for, layout, registries_for

# Its own module so lookup.py, which builder.py uses, can take it; callers import it here.
from layerkit.build.options import BuildOptions as BuildOptions
from layerkit.build.progress import PUBLISH
from layerkit.build.request import Target, reproducible_epoch, solve_args
from layerkit.build.signing import gate_for
from layerkit.errors import RegistryError, SpecError

if TYPE_CHECKING:
    from layerkit.build.client import BuildkitClient
    from layerkit.build.credentials import Credentials
    from layerkit.build.engine import Engine
    from layerkit.build.progress import Progress
    from layerkit.pipeline import Rendered

Action = Literal["built", "found", "copied"]


@dataclass
class BuildResult:
    hash: str
    image: str
    action: Action
    source: str | None = None  # where an existing image was found
    pushed: bool = False
    digest: str | None = None
    # Compressed bytes in the registry; unpushed, the engine's image size: its compressed
    # content on the containerd image store (Docker 26), unpacked on the classic one (20.10).
    size: int | None = None
    stages: dict[str, str] = field(default_factory=dict)  # stage -> image ref
    # Stage images this run solved and pushed -> the digest the solve or push answered: what
    # --sign signs (stage images that were already there are not this run's to sign).
    stage_digests: dict[str, str] = field(default_factory=dict)
    cached_steps: int = 0
    total_steps: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # "solve image", "push base", ...
    warnings: list[str] = field(default_factory=list)
    decision: Decision | None = None  # what was carried out (as `plan --json` prints it)
    # What the solves really asked BuildKit for, so the decision can be checked against it.
    solved: list[str] = field(default_factory=list)  # each solve's label, in order
    cache_imports: list[str] = field(default_factory=list)
    cache_exports: list[str] = field(default_factory=list)
    # A multi-platform image (build/multiplatform.py): this result is its index's, and these
    # are each platform's image, by conda platform.
    platforms: dict[str, BuildResult] = field(default_factory=dict)
    platform: str | None = None  # the conda platform this image is for (None: an index's result)
    # The digest the hash tag named before this build moved it to another (`digest`): a forced
    # build or a repair that did not reproduce the image (issue 18: reported, not hidden).
    replaced_digest: str | None = None

    def to_json(self) -> dict[str, object]:
        doc = self._own_json()
        if self.platforms:
            doc["platforms"] = {p: r.to_json() for p, r in sorted(self.platforms.items())}
        return doc

    def _own_json(self) -> dict[str, object]:
        return {
            "schema": 1,
            "hash": self.hash,
            "image": self.image,
            "action": self.action,
            "source": self.source,
            "pushed": self.pushed,
            "digest": self.digest,
            "platform": self.platform,
            "replaced_digest": self.replaced_digest,
            "size": self.size,
            "stages": dict(sorted(self.stages.items())),
            "stage_digests": dict(sorted(self.stage_digests.items())),
            "cached_steps": self.cached_steps,
            "total_steps": self.total_steps,
            "seconds": round(self.seconds, 3),
            "timings": dict(self.timings),
            "warnings": list(self.warnings),
            "decision": self.decision.to_json() if self.decision else None,
            "solved": list(self.solved),
            "cache_imports": sorted(set(self.cache_imports)),
            "cache_exports": sorted(set(self.cache_exports)),
        }


def build_lock_path(env_hash: str) -> Path:
    """The file `layerkit build` holds locked while it builds this hash on this machine."""
    from layerkit.resources import cache_dir

    return cache_dir() / "build-locks" / f"{env_hash}.lock"


@contextlib.contextmanager
def _build_lock(env_hash: str, progress: Progress) -> Iterator[bool]:
    """Held for the block; True when another run held it first (and so may have built)."""
    path = build_lock_path(env_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.message(f"waiting for another build of {env_hash[:12]} on this machine")
            fcntl.flock(fh, fcntl.LOCK_EX)
            waited = True
        try:
            yield waited
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(spec: Path, rendered: Rendered, opts: BuildOptions, progress: Progress) -> BuildResult:
    started = time.monotonic()
    lay = layout(rendered, opts)
    main = lay.main
    result = BuildResult(hash=main.hash, image=main.ref, action="built", platform=rendered.plan.platform)

    def warn(message: str) -> None:
        if message not in result.warnings:
            result.warnings.append(message)
            progress.message(message)

    creds = credentials_for(rendered, lay)
    registries = registries_for(lay, creds, warn)
    gate = gate_for(rendered, opts.require_signature, creds, warn)
    decision = result.decision = decide(lay, registries, opts, warn, accept=gate)
    if decision.action in ("found", "copy"):
        _reuse(decision, registries, result)
        progress.message(f"{result.image}: {result.action} ({result.source}); nothing to build")
        _describe(result, registries, decision.registry is not None)
        result.seconds = time.monotonic() - started
        return result

    with _build_lock(main.hash, progress) as waited:
        if waited:  # the run we waited for changed the registry: decide again
            decision = result.decision = decide(lay, registries, opts, warn, accept=gate)
            if decision.action in ("found", "copy"):
                _reuse(decision, registries, result)
                progress.message(f"{result.image}: built meanwhile by another run")
                result.seconds = time.monotonic() - started
                return result
        # The image the hash tag names now, if any (forced, or incomplete): whether this build
        # reproduces it is checked below. cache_from holds it exactly when it exists.
        before = registries.digest(main.ref) if decision.push and main.ref in decision.cache_from else None
        _solve_all(rendered, lay.targets, decision, opts, progress, creds, result)
        if before and result.pushed and result.digest and result.digest != before:
            result.replaced_digest = before
            warn(
                f"warning: {main.ref} was {before} and is now {result.digest}: this build did not "
                "reproduce the image of the same hash (`layerkit verify` names the first differing file)"
            )
    result.cached_steps, result.total_steps = progress.counts(main.label)
    _describe(result, registries, result.pushed)
    result.seconds = time.monotonic() - started
    return result


def _reuse(decision: Decision, registries: Registries, result: BuildResult) -> None:
    """Carry out found or copy: copies in the Decision's order, the image last, each by the
    digest the decision looked up (and the gate verified), tagged at the destination."""
    from layerkit.build.registry import ImageRef

    found = decision.found_at
    result.source = "engine" if decision.registry is None and found == decision.image else found
    for c in decision.copies:
        src = ImageRef.parse(c.src)
        # get_manifest checks a by-digest answer against its digest, so what is put is it.
        registries.client.copy(ImageRef(src.registry, src.repository, None, c.digest), ImageRef.parse(c.dst))
    result.action = "copied" if decision.action == "copy" else "found"
    result.pushed = bool(decision.copies)
    result.image = decision.uses
    result.digest = decision.found_digest
    result.stages = {s.stage: s.ref for s in decision.stage_images if decision.action == "copy" or s.exists}


def _describe(result: BuildResult, registries: Registries, in_registry: bool) -> None:
    """Fill the size from the registry, by the digest already known (the decision's or the
    build's: a tag is never asked again, it may have moved); best effort."""
    from layerkit.build.registry import ImageRef
    from layerkit.spec.imageref import is_digest

    if not in_registry or not result.digest or not is_digest(result.digest):
        return
    ref = ImageRef.parse(result.image)
    if ref.registry in registries.down:
        return
    with contextlib.suppress(RegistryError):
        result.size = registries.client.image_size(
            ImageRef(ref.registry, ref.repository, None, result.digest)
        )


def _solve_all(
    rendered: Rendered,
    plan: list[Target],
    decision: Decision,
    opts: BuildOptions,
    progress: Progress,
    creds: Callable[[str], Credentials | None],
    result: BuildResult,
) -> None:
    from layerkit.build.client import BuildkitClient
    from layerkit.build.context import BuildContext
    from layerkit.build.registry import ImageRef

    main = plan[0]
    has_registry = decision.registry is not None
    stage_images = {s.stage: s for s in decision.stage_images}
    cache_from, caches, push = decision.cache_from, decision.registry_caches, decision.push

    files, modes, secrets = solve_inputs(rendered)
    with BuildkitClient(opts.addr, tls=opts.tls) as client:
        caps = client.capabilities()
        if not caps.embedded_in_docker and not has_registry:
            raise SpecError(
                "building on a standalone buildkitd needs a registry: set registry.address or --registry"
            )
        if not caps.copy_link:
            files["Dockerfile"], removed = without_copy_link(rendered.dockerfile)
            if removed:
                progress.message(
                    "note: this engine's Dockerfile frontend has no COPY --link (BuildKit < 0.10): "
                    "building without it; a base change then also re-copies the environment"
                )
        # moby exporter + an Engine API push, unless the daemon's builder pushes itself (buildkitd,
        # or dockerd's containerd worker when there is a registry to push to).
        embedded = caps.embedded_in_docker and not (caps.pushes_images and push)
        engine = _engine(client) if embedded else None
        epoch = reproducible_epoch(caps.exporters, caps.version)
        with BuildContext(client, files, creds, modes=modes, secrets=secrets) as ctx:

            def solve(target: Target, label: str, *, publish: bool, export_cache: bool) -> dict[str, str]:
                progress.phase(label)
                t0 = time.monotonic()
                args = solve_args(
                    target,
                    embedded=embedded,
                    cache_from=cache_from,
                    network=opts.network,
                    push=push,
                    registry_caches=caches,
                    export_cache=export_cache,
                    publish=publish,
                    platform=rendered.plan.platform,
                    epoch=epoch,
                )
                res = client.solve(
                    frontend="dockerfile.v0",
                    frontend_attrs=args.frontend_attrs,
                    frontend_inputs=ctx.inputs,
                    session=ctx.session_id,
                    exporter=args.exporter,
                    exporter_attrs=args.exporter_attrs,
                    cache_imports=args.cache_imports,
                    cache_exports=args.cache_exports,
                    entitlements=args.entitlements,
                    on_status=progress,
                    masked=secrets,
                )
                result.timings[f"solve {label}"] = round(time.monotonic() - t0, 3)
                result.solved.append(label)
                result.cache_imports += cache_from if embedded else [a["ref"] for _, a in args.cache_imports]
                result.cache_exports += [a["ref"] for kind, a in args.cache_exports if kind == "registry"]
                return dict(res.exporter_response)

            def engine_push(target: Target) -> str | None:
                """The pushed manifest's digest (the moby exporter's is the image ID instead)."""
                if engine is None or not push:
                    return None
                t0 = time.monotonic()
                digests = []
                for ref in target.refs:
                    progress.message(f"pushing {ref}")
                    digests.append(engine.push(ref, creds(ImageRef.parse(ref).registry)))
                result.timings[f"push {target.label}"] = round(time.monotonic() - t0, 3)
                return digests[0]

            # The environment's image is what skip-by-hash finds, so it reaches the registry
            # last: a run that dies before (daemon, registry, Ctrl-C) leaves no image that
            # would hide missing stage images or caches from the next run, which builds again.
            # Its first solve shows what really ran; a pushing image exporter runs again at
            # the end, every step cached (phase PUBLISH).
            deferred = push and not embedded
            exporter_cache = has_registry and not embedded
            try:
                response = solve(main, main.label, publish=not deferred, export_cache=exporter_cache)
                for target in plan[1:]:
                    assert target.stage is not None
                    # The decision's: stage images only matter in a registry, and one is done
                    # with its registry cache (one pushed before its cache export died is
                    # solved again, all cached, so the cache goes in too).
                    if not stage_images[target.stage].solved(registry_cache=not embedded):
                        continue
                    answer = solve(target, target.label, publish=True, export_cache=exporter_cache)
                    digest = engine_push(target) or answer.get("containerimage.digest")
                    result.stages[target.stage] = target.ref
                    if digest and push:
                        result.stage_digests[target.stage] = digest
                if deferred:
                    response = solve(main, PUBLISH, publish=True, export_cache=False)
                result.digest = engine_push(main) or response.get("containerimage.digest")
                if engine is not None and not push:
                    info = engine.image(main.ref)
                    result.size = int(info["Size"]) if info else None
            finally:
                if engine is not None:
                    engine.close()
    for t in plan[1:]:
        if t.stage and stage_images[t.stage].exists:
            result.stages[t.stage] = t.ref
    result.pushed = push


def solve_inputs(rendered: Rendered) -> tuple[dict[str, str | bytes], dict[str, int], dict[str, bytes]]:
    """What every solve of this render sends: the context's files (rendered, then the user's
    own), their modes, and the secrets the Dockerfile mounts."""
    extra: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    for user in (rendered.plan.user_context, *rendered.contexts):
        if user is not None:
            data, data_modes = user.read()
            extra.update(data)
            modes.update(data_modes)
    return {**rendered.files, **extra}, modes, build_secrets(rendered)


def build_secrets(rendered: Rendered) -> dict[str, bytes]:
    """The BuildKit secrets the Dockerfile mounts, from the environment: the variables of the
    channel URLs (install RUN) and of the pip index URLs (pip RUN)."""
    from layerkit.spec import channelvars

    env = rendered.plan.env_install
    if env is None:
        return {}
    loc = rendered.checked.resolved.loc
    found = channelvars.values(env.secrets, loc(("conda", "channels")), "build")
    pip = [n for n in env.pip_secrets if n not in found]
    found |= channelvars.values(pip, loc(("conda", "pip")), "build", uses="a pip index URL")
    return {k: v.encode() for k, v in found.items()}


def _engine(client: BuildkitClient) -> Engine:
    from layerkit.build.engine import Engine

    # dockerd's builder is only reachable through the engine, so its address names it.
    return Engine(client.transport.address.engine_host)
