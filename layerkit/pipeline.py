"""One spec through the pipeline, up to its Dockerfile: load and check it, find and read its
lock, plan, hash and format (spec -> lock -> render -> hashing). No network, no builds:
build/, envs/, integrate/ and the API (layerkit.api re-exports these names) stand on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from layerkit import atomic
from layerkit.digest import HashResult
from layerkit.errors import SpecError
from layerkit.hashing.content import compute
from layerkit.lock.model import Lock
from layerkit.render.renderplan import RenderPlan, render_plan
from layerkit.render.usercontext import UserContext
from layerkit.spec.merge import Resolved, resolve
from layerkit.spec.validate import Checked
from layerkit.spec.validate import check as validate


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


def default_lock_path(spec: Path) -> Path:
    name = spec.name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return spec.with_name(f"{stem}.conda-lock.yml")


def find_lock(spec: Path) -> Path | None:
    path = default_lock_path(spec)
    return path if path.is_file() else None


@dataclass(frozen=True)
class Rendered:
    checked: Checked
    plan: RenderPlan
    hash: HashResult
    dockerfile: str
    lock: Lock | None
    notes: tuple[str, ...] = ()
    # Files sent besides `files`, read and checked at build time: the inference image's
    # source tree and models (the plan's user_context is another such).
    contexts: tuple[UserContext, ...] = ()
    env_hash: str | None = None  # an inference image's: the environment it stands on

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.checked.warnings + self.notes

    @property
    def files(self) -> dict[str, str]:
        """Every file of the build context, Dockerfile included."""
        return {"Dockerfile": self.dockerfile, **dict(self.plan.context_files)}


def _prepare(
    spec: Path | Checked, lock: Path | Lock | None, platform: str | None, auto_lock: bool
) -> tuple[Checked, Lock | None, RenderPlan, HashResult, bool | None]:
    """(checked, lock, plan, hash, whether the lock was made from these specs: None when not asked)."""
    checked = spec if isinstance(spec, Checked) else check_spec(spec, solver_grammar=False)
    if lock is None and auto_lock and checked.resolved.root.path is not None:
        found = find_lock(checked.resolved.root.path)
        lock = found
    lk = read_lock(lock) if isinstance(lock, Path) else lock
    if lk is not None and checked.resolved.spec.user_managed:
        raise SpecError("user_managed environments install nothing, so they take no lock")
    fresh = None if isinstance(spec, Checked) else _fresh(checked, lk)
    if fresh is False:
        check_grammar(checked)
    plan = render_plan(checked, lk, platform)
    return checked, lk, plan, compute(checked, plan, lk), fresh


def _fresh(checked: Checked, lk: Lock | None) -> bool:
    """A lock made from exactly these specs: they went through the solver's parser then, so
    the grammar check (and importing the solver, ~30 ms) is skipped, as `lock --check` does."""
    if lk is None or lk.spec_hash is None:
        return False
    from layerkit.lock.solve import lock_inputs

    return lk.spec_hash == lock_inputs(checked).spec_hash()


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

    checked, lk, plan, h, fresh = _prepare(spec, lock, platform, auto_lock)
    notes: tuple[str, ...] = ()
    # _prepare compared the lock's spec hash already unless handed a checked spec.
    if (
        lk is not None
        and lk.spec_hash is not None
        and not (fresh if fresh is not None else _fresh(checked, lk))
    ):
        notes = (f"{lk.source}: warning: the lock is stale (the spec changed since); run `layerkit lock`",)
    if lk is not None and lk.base_digests and not notes:
        from layerkit.lock.basepin import unpinned_bases
        from layerkit.render.baserefs import base_refs

        notes = tuple(
            f"{lk.source}: warning: the lock pins no digest for the base image {ref} (the base changed "
            "since); it floats until you run `layerkit lock`"
            for ref in unpinned_bases(base_refs(checked), lk)
        )
    return Rendered(checked, plan, h, render_dockerfile(plan, h), lk, notes)


def render_inference(
    spec: Path | Checked, lock: Path | Lock | None = None, platform: str | None = None, auto_lock: bool = True
) -> Rendered:
    """The inference image (render/inference.py): the environment's Dockerfile with the
    inference stage on top, hashed over the environment hash and what the stage adds."""
    import dataclasses

    from layerkit.hashing import inference as inference_hash
    from layerkit.render.inference import inference_plan, label
    from layerkit.render.jinja import render_dockerfile

    env = render(spec, lock, platform, auto_lock)
    inf = inference_plan(env.checked)
    h = inference_hash.compute(env.hash, env.plan, inf)
    stage = dataclasses.replace(
        inf.stage, instructions=(*inf.stage.instructions, label(h.hash, env.hash.hash))
    )
    plan = env.plan.model_copy(
        update={"context_files": tuple(sorted((*env.plan.context_files, *inf.context_files)))}
    )
    dockerfile = render_dockerfile(env.plan, env.hash, extra_stages=(stage,))
    return Rendered(env.checked, plan, h, dockerfile, env.lock, env.notes, inf.contexts(), env.hash.hash)


def platforms(checked: Checked) -> tuple[str, ...]:
    """The spec's platforms, in its order (default linux-64)."""
    return tuple(checked.resolved.spec.platforms or ("linux-64",))


def render_platforms(
    spec: Path | Checked, lock: Path | Lock | None = None, auto_lock: bool = True
) -> tuple[Rendered, ...]:
    """Each of the spec's platforms rendered, in the spec's order: checked and its lock read
    once (the first render), each platform's own Dockerfile and hash."""
    first = render(spec, lock, None, auto_lock)
    rest = tuple(render(first.checked, first.lock, p, False) for p in platforms(first.checked)[1:])
    return (first, *rest)


@dataclass(frozen=True)
class IndexHash:
    """A multi-platform spec's hash (hashing/index.py) and each platform's own."""

    hash: str
    platforms: dict[str, HashResult]


def hash_index(spec: Path | Checked, lock: Path | Lock | None = None, auto_lock: bool = True) -> IndexHash:
    """The image index's hash over every platform's (for a spec with two platforms or more)."""
    from layerkit.hashing.index import index_hash

    checked, lk, plan, first, _ = _prepare(spec, lock, None, auto_lock)
    done = {plan.platform: first}
    for p in platforms(checked)[1:]:
        done[p] = _prepare(checked, lk, p, False)[3]
    return IndexHash(index_hash({p: h.hash for p, h in done.items()}), done)


def renders_index_hash(renders: Sequence[Rendered]) -> str:
    """The image index's hash over every platform's render (hash_index's, from renders)."""
    from layerkit.hashing.index import index_hash

    return index_hash({r.plan.platform: r.hash.hash for r in renders})


def write_context(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write the build context: the directory is replaced whole, atomically (atomic.replace_dir),
    so it never holds a new Dockerfile beside an old environment file."""
    return atomic.replace_dir(out_dir, rendered.files)


def check_lock(checked: Checked, lockfile: Path) -> str:
    """Raise CheckFailed unless ``lockfile`` was made from these exact inputs and pins every
    floating base ref when it pins bases at all; returns the spec hash."""
    from layerkit.lock.solve import check_fresh
    from layerkit.render.baserefs import base_refs

    return check_fresh(checked, lockfile, lambda: base_refs(checked))
