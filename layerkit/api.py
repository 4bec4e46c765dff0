"""The Python API other build tools import; the CLI is a thin layer over it.

from layerkit import api
r = api.render(Path("layerkit.yaml"))
print(r.hash.hash, r.dockerfile)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Environment versions in the registry: their own module, named here as part of the API.
from layerkit.api_envs import env_diff, env_list, env_sbom, env_show

# Rebuild from scratch and compare (issue 18): its own module, named here as part of the API.
from layerkit.api_verify import verify
from layerkit.errors import SpecError
from layerkit.lock.model import Lock

# One spec up to its Dockerfile: the pipeline below build/, named here as part of the API.
from layerkit.pipeline import (
    Rendered,
    check_grammar,
    check_spec,
    default_lock_path,
    find_lock,
    hash_index,
    hash_spec,
    load,
    platforms,
    read_lock,
    render,
    render_inference,
    render_platforms,
    write_context,
)
from layerkit.spec.validate import Checked

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions, BuildResult
    from layerkit.build.decisions import EnvDecision
    from layerkit.build.indexplan import IndexPlan
    from layerkit.build.progress import Progress
    from layerkit.build.runner import RunOptions
    from layerkit.envs.register import Registered
    from layerkit.integrate.check import CheckReport
    from layerkit.integrate.makefile import Fragment
    from layerkit.lock.basepin import Outdated

__all__ = [
    "Rendered",
    "build",
    "build_inference",
    "check",
    "check_grammar",
    "check_spec",
    "default_lock_path",
    "env_diff",
    "env_list",
    "env_register",
    "env_sbom",
    "env_show",
    "find_lock",
    "hash_index",
    "hash_spec",
    "load",
    "lock",
    "make_fragment",
    "outdated",
    "plan",
    "platforms",
    "read_lock",
    "render",
    "render_inference",
    "render_platforms",
    "run",
    "run_platform",
    "verify",
    "write_context",
]


def lock(
    spec: Path | Checked,
    lockfile: Path | None = None,
    *,
    update: list[str] | None = None,
    solver: str | None = None,
    pin_base: bool = True,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[Lock, list[Path]]:
    """Resolve with conda-lock into ``lockfile`` (default: <stem>.conda-lock.yml beside the
    spec) and the per-platform explicit files; returns the lock and the explicit files.
    ``pin_base`` records the base images' digests (unreachable registries only warn)."""
    from layerkit.lock import solve

    checked = spec if isinstance(spec, Checked) else check_spec(spec)
    if lockfile is None:
        root = checked.resolved.root.path
        if root is None:
            raise SpecError("a spec without a file needs an explicit lockfile path")
        lockfile = default_lock_path(root)
    digests: dict[str, str] = {}
    if pin_base:
        from layerkit.build.basedigests import current_digests
        from layerkit.lock.basepin import resolve_for_lock
        from layerkit.render.baserefs import base_refs

        digests, warnings = resolve_for_lock(current_digests(checked, base_refs(checked)))
        for w in warnings:
            if on_warning:
                on_warning(w)
    lk = solve.lock(checked, lockfile, update=update, solver=solver, base_digests=digests)
    return lk, solve.write_explicit(Path(lk.source), lk)


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
    from layerkit.envs.ops import register_rendered

    warn = on_warning or (lambda _m: None)
    rendered = render(spec, lock, platform, auto_lock)
    for w in rendered.warnings:
        warn(w)
    # Several platforms: the record holds each one's image digest and the index's too.
    renders = render_platforms(spec, lock, auto_lock) if platform is None else ()
    done = register_rendered(rendered, registry, warn, renders if len(renders) > 1 else ())
    for w in done.warnings:
        warn(w)
    return done


def build(
    spec: Path,
    lock: Path | Lock | None = None,
    platform: str | None = None,
    auto_lock: bool = True,
    *,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> BuildResult:
    """Render, then build and push through BuildKit, unless the registry has the hash already.
    A spec with several platforms and no ``platform``: each platform's image, then the image
    index over them (build/multiplatform.py; ``result.platforms`` holds each platform's).

    Raises DaemonError (BuildKit unreachable, a step failed) or RegistryError (push refused);
    an unreachable registry only adds a warning to the result.
    """
    if platform is not None:
        return _build_rendered(
            Path(spec), render(spec, lock, platform, auto_lock), options, progress, on_warning
        )
    renders = render_platforms(spec, lock, auto_lock)
    if len(renders) == 1:
        return _build_rendered(Path(spec), renders[0], options, progress, on_warning)
    return _build_index(Path(spec), renders, options, progress, on_warning)


def _build_index(
    spec: Path,
    renders: tuple[Rendered, ...],
    options: BuildOptions | None,
    progress: Progress | None,
    on_warning: Callable[[str], None] | None,
) -> BuildResult:
    from layerkit.build.builder import BuildOptions
    from layerkit.build.multiplatform import build_index
    from layerkit.build.progress import Progress
    from layerkit.envs.attest import sign_index
    from layerkit.envs.ops import check_recorded

    opts = options or BuildOptions()
    prog = progress or Progress(opts.progress)
    said: set[str] = set()

    def once(w: str) -> None:  # the platforms share the spec's and the lock's warnings
        if on_warning and w not in said:
            said.add(w)
            on_warning(w)

    def one(rendered: Rendered, popts: BuildOptions) -> BuildResult:
        # Its own progress: step counts are per solve label, which every platform repeats.
        prog.message(f"=> platform {rendered.plan.platform}")
        return _build_rendered(spec, rendered, popts, Progress(prog.mode, prog.stream), once)

    try:
        result = build_index(renders, opts, one, prog.message)
        sign_index(renders[0], opts, result, prog.message)
        check_recorded(renders[0], result.platforms, opts.registry, once, renders)
        return result
    finally:
        prog.close()


def build_inference(
    spec: Path,
    lock: Path | Lock | None = None,
    platform: str | None = None,
    auto_lock: bool = True,
    *,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build (or find by its hash) the inference image: the environment image with the
    `serve:` section's model server on top (render/inference.py). ``result.image`` is the
    ref to run (`layerkit serve` does); its entrypoint is /usr/local/bin/layerkit-serve.
    The environment's shared stage images are the same as `build`'s. No name-version tag:
    that one names the environment image."""
    import dataclasses

    from layerkit.build.builder import BuildOptions
    from layerkit.errors import SpecError
    from layerkit.pipeline import platforms

    opts = dataclasses.replace(options or BuildOptions(), name_tag=False)
    rendered = render_inference(spec, lock, platform, auto_lock)
    if platform is None and len(several := platforms(rendered.checked)) > 1:
        # An inference image is built for one platform (the one that serves it): building the
        # first of several silently would hand an arm64 fleet an amd64 image.
        raise SpecError(
            f"the spec builds for {', '.join(several)}: pass --platform P to build the inference "
            "image for one of them (`layerkit serve` picks the engine's)"
        )
    return _build_rendered(Path(spec), rendered, opts, progress, on_warning)


def _build_rendered(
    spec: Path,
    rendered: Rendered,
    options: BuildOptions | None,
    progress: Progress | None,
    on_warning: Callable[[str], None] | None,
) -> BuildResult:
    from layerkit.build.builder import BuildOptions
    from layerkit.build.builder import build as run_build
    from layerkit.build.multiplatform import one_platform_options
    from layerkit.build.progress import Progress
    from layerkit.envs.attest import attest
    from layerkit.envs.ops import check_recorded

    opts = one_platform_options(rendered, options or BuildOptions())
    for w in rendered.warnings:
        if on_warning:
            on_warning(w)
    if rendered.plan.env_install and not rendered.plan.env_install.locked and on_warning:
        on_warning(
            f"{spec}: warning: no lock found; the env stage installs the unlocked spec (run `layerkit lock`)"
        )
    if opts.sign_key:  # before the build, not after minutes of it
        from layerkit.build.signing import check_key, cosign_binary

        check_key(opts.sign_key, "--sign key")
        cosign_binary()
    prog = progress or Progress(opts.progress)
    try:
        result = run_build(spec, rendered, opts, prog)
        attest(rendered, opts, result, prog.message)
        if len(platforms(rendered.checked)) == 1:  # a multi-platform spec's: _build_index checks
            check_recorded(rendered, {rendered.plan.platform: result}, opts.registry, prog.message)
        return result
    finally:
        prog.close()


def run(
    spec: Path,
    run_options: RunOptions,
    lock: Path | Lock | None = None,
    platform: str | None = None,
    auto_lock: bool = True,
    *,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[BuildResult, int]:
    """Build (or find) the image, then run ``run_options.command`` in it with the source
    directory mounted; returns the build result and the command's exit code."""
    from layerkit.build.builder import BuildOptions
    from layerkit.build.runner import run_rendered

    opts = options or BuildOptions()
    if platform is None:
        platform = run_platform(spec, opts.addr)
    rendered = render(spec, lock, platform, auto_lock)
    result = _build_rendered(Path(spec), rendered, opts, progress, on_warning)
    return result, run_rendered(rendered, result.image, opts, run_options)


def run_platform(spec: Path, addr: str | None = None) -> str:
    """The spec's platform that `run` and `serve` use: the one the engine (``addr``'s, else
    $DOCKER_HOST's) runs natively; SpecError when the spec does not build for it."""
    from layerkit.build.hostplatform import run_platform as pick

    return pick(load(spec).spec.platforms or ("linux-64",), addr, str(spec))


def plan(
    spec: Path,
    lock: Path | Lock | None = None,
    platform: str | None = None,
    auto_lock: bool = True,
    *,
    options: BuildOptions | None = None,
    offline: bool = False,
) -> EnvDecision | IndexPlan:
    """What `build` would do for one environment: inputs, hash, image ref, whether a registry
    has it, cache refs and steps. Asks the registry (manifest HEAD) unless offline; never
    builds, pushes or copies. ``plan_document`` turns plans into the versioned JSON.
    A spec with several platforms and no ``platform``: the image index's plan, with each
    platform's (build/indexplan.py)."""
    from layerkit.build.builder import BuildOptions
    from layerkit.build.decisions import decide_env

    opts = options or BuildOptions()
    if platform is None:
        renders = render_platforms(spec, lock, auto_lock)
        if len(renders) > 1:
            from layerkit.build.indexplan import plan_index

            return plan_index(Path(spec), renders, opts, offline=offline)
        return decide_env(Path(spec), renders[0], opts, offline=offline)
    from layerkit.build.multiplatform import one_platform_options

    rendered = render(spec, lock, platform, auto_lock)
    return decide_env(Path(spec), rendered, one_platform_options(rendered, opts), offline=offline)


def outdated(spec: Path, lock: Path | None = None) -> Outdated:
    """Base image digests recorded in the spec's lock against what their registries serve now."""
    from layerkit.build.basedigests import current_digests
    from layerkit.lock.basepin import outdated as compare
    from layerkit.render.baserefs import base_refs

    checked = check_spec(spec)
    path = lock or find_lock(Path(spec))
    found = current_digests(checked, base_refs(checked))
    return compare(Path(spec), read_lock(path) if path else None, found)


def check(
    specs: Sequence[Path] | None = None,
    *,
    context: Path | None = None,
    require_lock: bool = False,
    fix: bool = False,
) -> CheckReport:
    """Are the specs valid, their locks fresh and their committed build contexts current?
    ``specs=None`` checks the spec roots git tracks below the current directory. With
    ``fix``, stale contexts are rewritten. Never solves, builds or touches the network."""
    from layerkit.integrate.check import check as run_check
    from layerkit.integrate.discover import discover_specs

    return run_check(
        discover_specs() if specs is None else specs, context=context, require_lock=require_lock, fix=fix
    )


def make_fragment(specs: Sequence[Path] | None = None, *, stamps: Path | None = None) -> Fragment:
    """A GNU Makefile fragment (``.text``) with one target chain per environment: spec and
    layers -> lock -> rendered context -> image stamp ``stamps/NAME/HASH`` (default
    ``.layerkit/images``); ``.envs`` lists each chain's files. ``specs=None``: the spec
    roots git tracks below the current directory. Paths are relative to the current directory."""
    from layerkit.integrate.discover import discover_specs
    from layerkit.integrate.makefile import DEFAULT_STAMPS
    from layerkit.integrate.makefile import make_fragment as build_fragment

    return build_fragment(discover_specs() if specs is None else specs, stamps=stamps or DEFAULT_STAMPS)
