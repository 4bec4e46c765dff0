"""`layerkit check`: are the specs valid, their locks fresh and their committed build
contexts what `layerkit render` produces now? Never solves, builds or opens a socket.

Conventions (README, "pre-commit"):
- the lock of SPEC is the default one beside it (`<stem>.conda-lock.yml`);
- the rendered build context of SPEC is `<stem>.context/` beside it, checked when git tracks
  a file in it (outside a git work tree: when it exists), or the directory given with
  `--context`. The directory belongs to layerkit: files render does not produce (dotfiles
  and subdirectories aside) are reported, and `--fix` removes them.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from layerkit import inputs
from layerkit.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_OK,
    CheckFailed,
    SpecError,
    error_line,
    one_line,
)
from layerkit.integrate.discover import display, tracked_under

if TYPE_CHECKING:
    from layerkit.spec.validate import Checked

SCHEMA = "layerkit.check/1"
LockStatus = Literal["fresh", "stale", "missing", "unlocked", "not-needed"]
ContextStatus = Literal["current", "stale", "fixed"]


@dataclass(frozen=True)
class Problem:
    """One stale thing: the file it is about, what is wrong and the command that fixes it."""

    file: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def line(self) -> str:
        return one_line(f"{self.file}: {'warning: ' if self.severity == 'warning' else ''}{self.message}")


@dataclass(frozen=True)
class LockState:
    path: str
    status: LockStatus


@dataclass(frozen=True)
class ContextState:
    path: str
    status: ContextStatus
    stale: tuple[str, ...]  # rendered files that are missing or differ on disk
    extra: tuple[str, ...]  # files on disk that render does not produce


@dataclass(frozen=True)
class SpecCheck:
    spec: str
    error: str | None  # bad input, "file:line:col: error: message"; nothing else was checked
    lock: LockState | None
    context: ContextState | None
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.error is None and not any(p.severity == "error" for p in self.problems)

    def to_json(self) -> dict[str, object]:
        ctx = self.context
        context = None
        if ctx is not None:
            context = {
                "path": ctx.path,
                "status": ctx.status,
                "stale": list(ctx.stale),
                "extra": list(ctx.extra),
            }
        return {
            "spec": self.spec,
            "ok": self.ok,
            "error": self.error,
            "lock": {"path": self.lock.path, "status": self.lock.status} if self.lock else None,
            "context": context,
            "problems": [
                {"file": p.file, "message": p.message, "severity": p.severity} for p in self.problems
            ],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class CheckReport:
    specs: tuple[SpecCheck, ...]

    @property
    def exit_code(self) -> int:
        """2 when a spec is bad input, else 1 when something is stale, else 0."""
        if any(s.error for s in self.specs):
            return EXIT_BAD_INPUT
        return EXIT_OK if all(s.ok for s in self.specs) else EXIT_CHECK_FAILED

    def to_json(self) -> dict[str, object]:
        return {"schema": SCHEMA, "ok": self.exit_code == EXIT_OK, "specs": [s.to_json() for s in self.specs]}


def _stem(spec: Path) -> str:
    return spec.name.rsplit(".", 1)[0] if "." in spec.name else spec.name


def default_context_dir(spec: Path) -> Path:
    """Where a committed rendered build context of `spec` lives: `<stem>.context/` beside it."""
    return spec.with_name(f"{_stem(spec)}.context")


def _context_in_use(directory: Path) -> bool:
    tracked = tracked_under(directory)
    return directory.is_dir() if tracked is None else tracked


def _quote(path: Path | str) -> str:
    return shlex.quote(display(Path(path)))


def _check_lock(
    checked: Checked, spec: Path, lockfile: Path, require: bool
) -> tuple[LockState, tuple[Problem, ...]]:
    from layerkit.lock.solve import recorded_hash
    from layerkit.pipeline import check_lock

    shown = display(lockfile)
    fix = f"run `layerkit lock {_quote(spec)}`"
    if checked.resolved.spec.user_managed:
        return LockState(shown, "not-needed"), ()
    if not lockfile.exists():
        severity: Literal["error", "warning"] = "error" if require else "warning"
        what = f"no lockfile ({shown}): the image would install the unlocked spec; {fix}"
        return LockState(shown, "missing"), (Problem(display(spec), what, severity),)
    try:
        check_lock(checked, lockfile)
    except CheckFailed:
        if recorded_hash(lockfile) is None:
            what = f"not made by `layerkit lock` (no layerkit_spec_hash), so it cannot be checked; {fix}"
            return LockState(shown, "unlocked"), (Problem(shown, what),)
        what = f"stale: {display(spec)} or a layer it extends changed since it was locked; {fix}"
        return LockState(shown, "stale"), (Problem(shown, what),)
    return LockState(shown, "fresh"), ()


def _on_disk(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")}


def _check_context(
    checked: Checked, spec: Path, directory: Path, fix: bool, custom: bool
) -> tuple[ContextState, tuple[Problem, ...]]:
    from layerkit import atomic, pipeline

    files = {name: content.encode("utf-8") for name, content in pipeline.render(checked).files.items()}
    stale = []
    for name, want in sorted(files.items()):
        try:
            # Read no more than the render's size: a FIFO or /dev/zero there is stale, not a hang.
            if inputs.read_bytes(directory / name, "rendered file", max_bytes=len(want)) == want:
                continue
        except SpecError:
            pass  # missing, not a regular file, larger, unreadable: rewritten by --fix
        stale.append(name)
    extra = sorted(_on_disk(directory) - set(files))
    shown = display(directory)
    if not (stale or extra):
        return ContextState(shown, "current", (), ()), ()
    if fix:
        directory.mkdir(parents=True, exist_ok=True)
        for name in stale:
            atomic.write_text(directory / name, files[name].decode("utf-8"))
        for name in extra:
            (directory / name).unlink()
        # A later `render -o` replaces only the files MANIFEST names: it must name these.
        atomic.write_text(directory / atomic.MANIFEST, atomic.manifest(files))
        return ContextState(shown, "fixed", tuple(stale), tuple(extra)), ()
    cmd = f"layerkit check --fix {_quote(spec)}" + (f" --context {_quote(directory)}" if custom else "")
    problems = [
        Problem(display(directory / n), f"out of date with what {display(spec)} renders; run `{cmd}`")
        for n in stale
    ] + [
        Problem(display(directory / n), f"not part of the rendered context of {display(spec)}; run `{cmd}`")
        for n in extra
    ]
    return ContextState(shown, "stale", tuple(stale), tuple(extra)), tuple(problems)


def check_one(
    spec: Path, *, context: Path | None = None, require_lock: bool = False, fix: bool = False
) -> SpecCheck:
    """Check one spec; bad input is recorded on the result (error), not raised."""
    from layerkit import pipeline

    shown = display(spec)
    try:
        # A fresh lock proves its specs went through the solver's parser (spec/grammar.py).
        checked = pipeline.check_spec(spec, solver_grammar=False)
        lock, problems = _check_lock(checked, spec, pipeline.default_lock_path(spec), require_lock)
        if lock.status != "fresh":
            pipeline.check_grammar(checked)
        directory = context or default_context_dir(spec)
        ctx = None
        if context is not None or _context_in_use(directory):
            ctx, more = _check_context(checked, spec, directory, fix, context is not None)
            problems += more
    except SpecError as exc:
        where = str(exc.location or shown)
        if exc.location and Path(exc.location.file).is_absolute():
            # Layers are loaded by absolute path; name them as the user does.
            where = str(replace(exc.location, file=display(Path(exc.location.file))))
        return SpecCheck(shown, error_line(where, exc.message), None, None, (), ())
    return SpecCheck(shown, None, lock, ctx, problems, tuple(dict.fromkeys(checked.warnings)))


def check(
    specs: Sequence[Path], *, context: Path | None = None, require_lock: bool = False, fix: bool = False
) -> CheckReport:
    if context is not None and len(specs) != 1:
        raise SpecError("--context names the context of one spec: give exactly one SPEC with it")
    return CheckReport(
        tuple(check_one(s, context=context, require_lock=require_lock, fix=fix) for s in sorted(set(specs)))
    )
