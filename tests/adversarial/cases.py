"""What the adversarial cases share: their category markers and the subprocess that runs
layerkit under a memory cap.

Bad input must fail fast and small (exit 2 or 3, one line, a position): no case measures
time (CI machines are loaded). Instead layerkit runs under RLIMIT_AS, so a blow-up (an alias
bomb expanded, /dev/zero read whole) fails the case by MemoryError every time; the caps
themselves are asserted by the message they give; the subprocess timeout is only a net.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "adversarial"
CATEGORIES = ("bad input", "injection", "secrets", "cache", "faults")

# One decorator puts a case in a category: `@bad_input def test_...`.
bad_input = pytest.mark.adversarial("bad input")
injection = pytest.mark.adversarial("injection")
secrets = pytest.mark.adversarial("secrets")
cache = pytest.mark.adversarial("cache")
faults = pytest.mark.adversarial("faults")

MEMORY_CAP = 200 * 1024 * 1024  # issue 15 §3: "under 200 MB"
SAFETY_NET = 120  # seconds; a hang is caught by the O_NONBLOCK/fstat assertions, not by this


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()

    def error_line(self) -> str:
        """The run's one error line (warnings may precede it)."""
        errors = [ln for ln in self.lines if ": error: " in ln]
        assert len(errors) == 1, self.err
        return errors[0]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def layerkit(*args: str | Path | bytes, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run the layerkit CLI of this checkout in a subprocess capped at MEMORY_CAP."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    argv: list[str | bytes] = [sys.executable, "-m", "layerkit"]
    argv += [a if isinstance(a, bytes) else str(a) for a in args]
    proc = subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, timeout=SAFETY_NET,
                          preexec_fn=_cap_memory, check=False)  # fmt: skip
    return Run(
        proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    )


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def assert_one_line_error(run: Run, code: int, where: str | None = None) -> str:
    """Exit `code`, no traceback, one `file[:line:col]: error: ...` line free of control
    characters; `where` is the start the line must have (a file, or file:line:col)."""
    assert run.code == code, (run.code, run.err)
    assert "Traceback" not in run.err, run.err
    assert not _CONTROL.search(run.err), repr(run.err)
    line = run.error_line()
    if where is not None:
        assert re.match(rf"{re.escape(where)}(:\d+:\d+)?: error: ", line), (line, where)
    return line
