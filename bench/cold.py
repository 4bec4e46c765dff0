"""Whole-process, cold timings: every run is a fresh process with a fresh HOME and cache dir.

hyperfine (Debian's `hyperfine`, a public tool) does the timing when it is on PATH: `-N` (no
shell in between), `--prepare` removes the HOME of the previous run. Without it, the same
protocol runs here with subprocess. Nothing is timed inside a warmed-up process.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RUNS = int(os.environ.get("LAYERKIT_BENCH_RUNS", "10"))  # fewer for a quick look at the table
WARMUP = 1  # fills the OS page cache only: HOME and the cache dir are removed before every run


def tool() -> str:
    return "hyperfine" if shutil.which("hyperfine") else "subprocess"


def cold_env(env: dict[str, str], home: Path) -> dict[str, str]:
    """`env` with HOME and every cache dir layerkit (or a peer) could use pointing into `home`."""
    cache = home / ".cache"
    return {**env, "HOME": str(home), "XDG_CACHE_HOME": str(cache), "LAYERKIT_CACHE": str(cache / "layerkit")}


def timed(
    cmd: Sequence[str], env: dict[str, str], cwd: Path, runs: int = RUNS, warmup: int = WARMUP
) -> dict[str, Any]:
    """Median/min/max wall seconds of `runs` cold whole-process runs of `cmd` (exit codes too)."""
    with tempfile.TemporaryDirectory(prefix="lk-cold-") as d:
        home = Path(d) / "home"
        run_env = cold_env(env, home)
        if tool() == "hyperfine":
            times, codes = _hyperfine(list(cmd), run_env, cwd, home, Path(d) / "out.json", runs, warmup)
        else:
            times, codes = _subprocess(list(cmd), run_env, cwd, home, runs, warmup)
        err = ""
        if any(codes):
            shutil.rmtree(home, ignore_errors=True)
            p = subprocess.run(list(cmd), env=run_env, cwd=cwd, capture_output=True, text=True, check=False)
            err = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": len(times),
        "exit_codes": sorted(set(codes)),
        "tool": tool(),
        **({"error": err} if err else {}),
    }


def _hyperfine(
    cmd: list[str], env: dict[str, str], cwd: Path, home: Path, out: Path, runs: int, warmup: int
) -> tuple[list[float], list[int]]:
    import shlex

    subprocess.run(
        ["hyperfine", "-N", "-i", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
         "--prepare", f"rm -rf {shlex.quote(str(home))}", "--export-json", str(out), shlex.join(cmd)],
        env=env, cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(out.read_text())["results"][0]
    return list(result["times"]), [int(c) for c in result["exit_codes"]]


def _subprocess(
    cmd: list[str], env: dict[str, str], cwd: Path, home: Path, runs: int, warmup: int
) -> tuple[list[float], list[int]]:
    times, codes = [], []
    for i in range(warmup + runs):
        shutil.rmtree(home, ignore_errors=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            codes.append(p.returncode)
    return times, codes


def floor(python: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """`python -c pass`: the interpreter's own start-up (site, .pth files) under every figure."""
    return timed([python, "-c", "pass"], env, cwd)
