"""``layerkit build``: render, skip by hash, solve through BuildKit, push.

Order of work, cheapest first:
1. render and hash (no daemon, no network);
2. skip-by-hash: HEAD ``<repo>:<hash>`` in the workspace registry, then in each global
   registry (found there: copied into the workspace registry); no daemon is contacted;
3. one build per hash at a time on this machine (a file lock), re-checking the registry
   once the lock is ours, so concurrent runs of the same spec build once;
4. solve the image (its Status stream says what really ran), then solve each shared stage
   not yet in the registry (all steps cached by then) and push them as their own images;
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
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from layerkit.build.compat import without_copy_link
from layerkit.build.lookup import Registries, credentials_for, find_existing, layout, registries_for

# Its own module so lookup.py, which builder.py uses, can take it; callers import it here.
from layerkit.build.options import BuildOptions as BuildOptions
from layerkit.build.progress import PUBLISH
from layerkit.build.request import Target, solve_args
from layerkit.build.signing import gate_for
from layerkit.errors import RegistryError, SpecError

if TYPE_CHECKING:
    from layerkit.build.client import BuildkitClient
    from layerkit.build.engine import Engine
    from layerkit.build.progress import Progress
    from layerkit.build.registry import Credentials
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
    cached_steps: int = 0
    total_steps: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # "solve image", "push base", ...
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": 1,
            "hash": self.hash,
            "image": self.image,
            "action": self.action,
            "source": self.source,
            "pushed": self.pushed,
            "digest": self.digest,
            "size": self.size,
            "stages": dict(sorted(self.stages.items())),
            "cached_steps": self.cached_steps,
            "total_steps": self.total_steps,
            "seconds": round(self.seconds, 3),
            "timings": dict(self.timings),
            "warnings": list(self.warnings),
        }


def build_lock_path(env_hash: str) -> Path:
    """The file `layerkit build` holds locked while it builds this hash on this machine."""
    from layerkit.resources import cache_dir

    return cache_dir() / "build-locks" / f"{env_hash}.lock"


@contextlib.contextmanager
def _build_lock(env_hash: str, progress: Progress) -> Iterator[None]:
    path = build_lock_path(env_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.message(f"waiting for another build of {env_hash[:12]} on this machine")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(spec: Path, rendered: Rendered, opts: BuildOptions, progress: Progress) -> BuildResult:
    from layerkit.build.registry import ImageRef

    started = time.monotonic()
    lay = layout(rendered, opts)
    address, plan, main, workspace_host = lay.address, lay.targets, lay.main, lay.workspace_host
    result = BuildResult(hash=main.hash, image=main.ref, action="built")

    def warn(message: str) -> None:
        result.warnings.append(message)
        progress.message(message)

    creds = credentials_for(rendered, lay)
    registries = registries_for(lay, creds, warn)
    gate = gate_for(rendered, opts.require_signature, registries.client, creds, warn)

    def lookup() -> bool:
        if opts.force:
            return False
        found = find_existing(lay, registries, opts.addr, gate)
        if found is None:
            return False
        where, ref = found
        result.source = "engine" if where == "engine" else ref
        if where != "global":
            result.action = "found"
        elif address and workspace_host not in registries.down:
            registries.client.copy(ImageRef.parse(ref), ImageRef.parse(main.ref))
            result.action, result.pushed, result.image = "copied", True, main.ref
        else:
            result.action, result.image = "found", ref
        return True

    if lookup():
        progress.message(f"{result.image}: {result.action} ({result.source}); nothing to build")
        _describe(result, registries, bool(address))
        result.seconds = time.monotonic() - started
        return result

    with _build_lock(main.hash, progress):
        if lookup():  # another run built it while we waited
            progress.message(f"{result.image}: built meanwhile by another run")
            result.seconds = time.monotonic() - started
            return result
        _solve_all(rendered, plan, opts, progress, registries, creds, result, address is not None, gate)
    result.cached_steps, result.total_steps = progress.counts(main.label)
    _describe(result, registries, result.pushed)
    result.seconds = time.monotonic() - started
    return result


def _describe(result: BuildResult, registries: Registries, in_registry: bool) -> None:
    """Fill digest and size from the registry (best effort: a missing size is no failure)."""
    from layerkit.build.registry import ImageRef

    if not in_registry:
        return
    ref = ImageRef.parse(result.image)
    if ref.registry in registries.down:
        return
    with contextlib.suppress(RegistryError):
        info = registries.client.head_manifest(ref)
        result.digest = info.digest if info else None
        result.size = registries.client.image_size(ref)


def _solve_all(
    rendered: Rendered,
    plan: list[Target],
    opts: BuildOptions,
    progress: Progress,
    registries: Registries,
    creds: Callable[[str], Credentials | None],
    result: BuildResult,
    has_registry: bool,
    gate: Callable[[str, bool], bool] | None = None,
) -> None:
    from layerkit.build.client import BuildkitClient
    from layerkit.build.context import BuildContext
    from layerkit.build.registry import ImageRef

    main = plan[0]
    user = rendered.plan.user_context
    extra, modes = user.read() if user else ({}, {})
    # Under --require-signature a stage image is a cache source only if it verifies; else rebuilt.
    existing = {
        t.stage: has_registry and registries.exists(t.ref) and (gate is None or gate(t.ref, True))
        for t in plan[1:]
    }
    # Earlier builds of this environment (same name-version tag) seed the cache too.
    prior = [f"{main.repo}:{t}" for t in main.extra_tags]
    cache_from = [t.ref for t in plan[1:] if existing[t.stage]]
    cache_from += [ref for ref in prior if has_registry and registries.exists(ref)]
    if opts.force and has_registry and registries.exists(main.ref):
        cache_from.append(main.ref)  # a forced rebuild starts from the image it replaces
    workspace = ImageRef.parse(main.ref).registry if has_registry else None
    push = opts.push and has_registry and workspace not in registries.down
    if not push and has_registry and opts.push:
        result.warnings.append(f"warning: {main.ref} is not pushed: its registry is unreachable")

    secrets = build_secrets(rendered)
    files: dict[str, str | bytes] = {**rendered.files, **extra}
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
        # Every target's registry cache that exists: a base-only change still finds the env
        # stage's (its hash did not move), a rebuild of this hash finds the image's.
        caches = [
            t.cache_ref for t in plan if has_registry and not embedded and registries.exists(t.cache_ref)
        ]
        engine = _engine(client) if embedded else None
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
                return dict(res.exporter_response)

            def engine_push(target: Target) -> None:
                if engine is None or not push:
                    return
                t0 = time.monotonic()
                for ref in target.refs:
                    progress.message(f"pushing {ref}")
                    engine.push(ref, creds(ImageRef.parse(ref).registry))
                result.timings[f"push {target.label}"] = round(time.monotonic() - t0, 3)

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
                    # A stage image is done with its registry cache: one pushed before its cache
                    # export died is solved again (all cached) so the cache goes in too.
                    done = existing[target.stage] and (embedded or target.cache_ref in caches)
                    if done or not push:
                        continue  # stage images only matter in a registry
                    solve(target, target.label, publish=True, export_cache=exporter_cache)
                    engine_push(target)
                    result.stages[target.stage] = target.ref
                if deferred:
                    response = solve(main, PUBLISH, publish=True, export_cache=False)
                result.digest = response.get("containerimage.digest")
                engine_push(main)
                if engine is not None and not push:
                    info = engine.image(main.ref)
                    result.size = int(info["Size"]) if info else None
            finally:
                if engine is not None:
                    engine.close()
    for t in plan[1:]:
        if existing[t.stage] and t.stage:
            result.stages[t.stage] = t.ref
    result.pushed = push


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
    from layerkit.build.transport import DEFAULT_DOCKER_HOST

    address = client.transport.address
    # dockerd's builder is only reachable through the engine, so its address names it.
    host = address.target if address.kind == "docker" else os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST)
    return Engine(host)
