"""Find the spec roots of a git work tree, and name paths relative to where the user is.

A spec root is a file git tracks named `layerkit.yaml` or `*.layerkit.yaml`; layers (the
files they extend) are named otherwise, so they are not checked or built on their own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from layerkit.errors import SpecError

ROOT_NAMES = ("layerkit.yaml", "*.layerkit.yaml")


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise SpecError("git is not installed: name the specs to use (SPEC...)") from None


def discover_specs(cwd: Path | None = None) -> list[Path]:
    """Spec roots in the index of the git work tree holding `cwd` (default: the current
    directory), below it, relative to it, sorted. Files deleted from the work tree are skipped."""
    where = cwd or Path.cwd()
    pathspecs = [f":(glob)**/{n}" for n in ROOT_NAMES]
    proc = _git(["ls-files", "-z", "--cached", "--", *pathspecs], where)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SpecError(
            f"{where}: not in a git work tree ({detail[-1] if detail else 'git ls-files failed'}); "
            "name the specs to use (SPEC...)"
        )
    names = sorted({n for n in proc.stdout.decode("utf-8", errors="surrogateescape").split("\0") if n})
    return [Path(n) for n in names if (where / n).is_file()]


def tracked_under(directory: Path) -> bool | None:
    """Whether git tracks any file in `directory`; None outside a git work tree."""
    if not directory.is_dir():
        return False
    proc = _git(["ls-files", "-z", "--cached", "--", "."], directory)
    if proc.returncode != 0:
        return None
    return bool(proc.stdout.strip(b"\0"))


def display(path: Path) -> str:
    """`path` relative to the current directory when it is below it, else absolute: what
    messages print and what generated Makefiles name."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
