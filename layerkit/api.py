"""The Python API other build tools import; the CLI is a thin layer over it.

from layerkit import api
r = api.render(Path("layerkit.yaml"))
print(r.hash.hash, r.dockerfile)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit import atomic, inputs

# Environment versions in the registry: their own module, named here as part of the API.
from layerkit.api_envs import env_diff, env_list, env_register, env_show
from layerkit.digest import HashResult
from layerkit.errors import SpecError
from layerkit.hashing.content import compute
from layerkit.lock.model import Lock
from layerkit.render.plan import RenderPlan, build_plan
from layerkit.spec.merge import Resolved, resolve
from layerkit.spec.validate import Checked
from layerkit.spec.validate import check as validate

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions, BuildResult
    from layerkit.build.buildplan import EnvPlan
    from layerkit.build.progress import Progress
    from layerkit.build.runner import RunOptions
    from layerkit.integrate.check import CheckReport
    from layerkit.integrate.makefile import Fragment
    from layerkit.lock.basepin import Outdated

__all__ = [
    "Rendered",
    "build",
    "check",
    "check_grammar",
    "check_spec",
    "default_lock_path",
    "env_diff",
    "env_list",
    "env_register",
    "env_show",
    "find_lock",
    "hash_spec",
    "load",
    "lock",
    "make_fragment",
    "outdated",
    "plan",
    "read_lock",
    "render",
    "run",
    "write_context",
]


def load(spec: Path) -> Resolved:
    """Load a spec and its layers, merged, without semantic checks."""
    return resolve(Path(spec))


def check_spec(spec: Path | Resolved, *, solver_grammar: bool = True) -> Checked:
    """Load (if needed) and validate; raises SpecError, returns warnings on the result.
    A base Dockerfile is checked too, as BuildKit will read it (render/userfile.py).
    ``solver_grammar=False`` skips reading the conda specs with py-rattler's MatchSpec
    (spec/grammar.py): only for callers that prove them by a fresh lock instead, or call
    ``check_grammar`` when the lock is not fresh."""
    from layerkit.render.userfile import check_base_dockerfile

    checked = validate(spec if isinstance(spec, Resolved) else load(spec))
    check_base_dockerfile(checked)
    if solver_grammar:
        check_grammar(checked)
    return checked


def check_grammar(checked: Checked) -> None:
    """The conda specs as the solver's own MatchSpec parser reads them; raises SpecError."""
    from layerkit.spec import grammar

    grammar.check(checked.resolved)


def read_lock(path: Path) -> Lock:
    """Read a lock: conda-lock's unified YAML or a conda explicit file."""
    from layerkit.lock.explicit import read_explicit

    if path.name.endswith((".yml", ".yaml")):
        from layerkit.lock.unified import read_unified

        return read_unified(path)
    return read_explicit(path)


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
    from layerkit.lock import run

    checked = spec if isinstance(spec, Checked) else check_spec(spec)
    if lockfile is None:
        root = checked.resolved.root.path
        if root is None:
            raise SpecError("a spec without a file needs an explicit lockfile path")
        lockfile = default_lock_path(root)
    digests: dict[str, str] = {}
    if pin_base:
        from layerkit.lock.basepin import resolve_for_lock

        digests, warnings = resolve_for_lock(checked)
        for w in warnings:
            if on_warning:
                on_warning(w)
    lk = run.lock(checked, lockfile, update=update, solver=solver, base_digests=digests)
    return lk, run.write_explicit(Path(lk.source), lk)


def default_lock_path(spec: Path) -> Path:
    name = spec.name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return spec.with_name(f"{stem}.conda-lock.yml")


def find_lock(spec: Path) -> Path | None:
    path = default_lock_path(spec)
    if path.is_file():
        return path
    inputs.note_absent(path)
    return None


@dataclass(frozen=True)
class Rendered:
    checked: Checked
    plan: RenderPlan
    hash: HashResult
    dockerfile: str
    lock: Lock | None
    notes: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.checked.warnings + self.notes

    @property
    def files(self) -> dict[str, str]:
        """Every file of the build context, Dockerfile included."""
        return {"Dockerfile": self.dockerfile, **dict(self.plan.context_files)}


def _prepare(
    spec: Path | Checked, lock: Path | Lock | None, platform: str | None, auto_lock: bool
) -> tuple[Checked, Lock | None, RenderPlan, HashResult]:
    checked = spec if isinstance(spec, Checked) else check_spec(spec)
    if lock is None and auto_lock and checked.resolved.root.path is not None:
        found = find_lock(checked.resolved.root.path)
        lock = found
    lk = read_lock(lock) if isinstance(lock, Path) else lock
    if lk is not None and checked.resolved.spec.user_managed:
        raise SpecError("user_managed environments install nothing, so they take no lock")
    plan = build_plan(checked, lk, platform)
    return checked, lk, plan, compute(checked, plan, lk)


def hash_spec(
    spec: Path | Checked, lock: Path | Lock | None = None, platform: str | None = None, auto_lock: bool = True
) -> HashResult:
    """The environment hash (the default lockfile beside the spec is used when present)."""
    return _prepare(spec, lock, platform, auto_lock)[3]


def render(
    spec: Path | Checked, lock: Path | Lock | None = None, platform: str | None = None, auto_lock: bool = True
) -> Rendered:
    """Plan, hash and format the Dockerfile and its context files."""
    from layerkit.render.jinja import render_dockerfile

    checked, lk, plan, h = _prepare(spec, lock, platform, auto_lock)
    notes: tuple[str, ...] = ()
    if lk is not None and lk.spec_hash is not None:
        from layerkit.lock.run import lock_inputs

        if lk.spec_hash != lock_inputs(checked).spec_hash():
            notes = (
                f"{lk.source}: warning: the lock is stale (the spec changed since); run `layerkit lock`",
            )
    if lk is not None and lk.base_digests and not notes:
        from layerkit.lock.basepin import unpinned_bases

        notes = tuple(
            f"{lk.source}: warning: the lock pins no digest for the base image {ref} (the base changed "
            "since); it floats until you run `layerkit lock`"
            for ref in unpinned_bases(checked, lk)
        )
    return Rendered(checked, plan, h, render_dockerfile(plan, h), lk, notes)


def write_context(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write the build context; each file is replaced atomically (temp file + rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in sorted(rendered.files.items()):
        written.append(atomic.write_text(out_dir / name, content))
    return written


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

    Raises DaemonError (BuildKit unreachable, a step failed) or RegistryError (push refused);
    an unreachable registry only adds a warning to the result.
    """
    return _build_rendered(Path(spec), render(spec, lock, platform, auto_lock), options, progress, on_warning)


def _build_rendered(
    spec: Path,
    rendered: Rendered,
    options: BuildOptions | None,
    progress: Progress | None,
    on_warning: Callable[[str], None] | None,
) -> BuildResult:
    from layerkit.build.builder import BuildOptions
    from layerkit.build.builder import build as run_build
    from layerkit.build.progress import Progress

    opts = options or BuildOptions()
    for w in rendered.warnings:
        if on_warning:
            on_warning(w)
    if rendered.plan.env_install and not rendered.plan.env_install.locked and on_warning:
        on_warning(
            f"{spec}: warning: no lock found; the env stage installs the unlocked spec (run `layerkit lock`)"
        )
    prog = progress or Progress(opts.progress)
    try:
        return run_build(spec, rendered, opts, prog)
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
    rendered = render(spec, lock, platform, auto_lock)
    result = _build_rendered(Path(spec), rendered, opts, progress, on_warning)
    return result, run_rendered(rendered, result.image, opts, run_options)


def plan(
    spec: Path,
    lock: Path | Lock | None = None,
    platform: str | None = None,
    auto_lock: bool = True,
    *,
    options: BuildOptions | None = None,
    offline: bool = False,
) -> EnvPlan:
    """What `build` would do for one environment: inputs, hash, image ref, whether a registry
    has it, cache refs and steps. Asks the registry (manifest HEAD) unless offline; never
    builds, pushes or copies. ``plan_document`` turns plans into the versioned JSON."""
    from layerkit.build.builder import BuildOptions
    from layerkit.build.buildplan import plan_env

    rendered = render(spec, lock, platform, auto_lock)
    return plan_env(Path(spec), rendered, options or BuildOptions(), offline=offline)


def outdated(spec: Path, lock: Path | None = None) -> Outdated:
    """Base image digests recorded in the spec's lock against what their registries serve now."""
    from layerkit.lock.basepin import outdated as compare

    checked = check_spec(spec)
    path = lock or find_lock(Path(spec))
    return compare(Path(spec), checked, read_lock(path) if path else None)


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
