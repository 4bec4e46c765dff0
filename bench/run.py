"""layerkit benchmark: figures and ratios measured in one run; never asserts on timing.

    python3 bench/run.py            # readable table on stdout (progress on stderr)
    python3 bench/run.py --json     # the same figures as JSON on stdout

Sections:
  1. whole-process `layerkit render|hash SPEC` (median of 7) vs hpccm's whole-process render
     (measured here when `pip install hpccm` works, else the reference 0.11 s);
  2. 100 generated specs rendered in one process with `api.render(path, auto_lock=False)`;
  3. `layerkit lock` against synthetic local channels of 5, 50 and 500 packages, then
     `layerkit lock --check` on 10 locked specs (goal <= 0.3 s each);
  5. `layerkit build` cold / warm / pruned / skip-by-hash and image size (bench/build_bench.py);
  plus interpreter/import start-up figures and the imports that dominate `lock --check`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # leave no __pycache__ beside bench/ and tests/ helpers
ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

import report  # noqa: E402  (bench/report.py: table formatting)
import specgen  # noqa: E402  (bench/specgen.py: generated specs, channels and recipes)

PY = sys.executable
RUNS = 7
HPCCM_REFERENCE_S = 0.11  # hpccm whole-process render of a comparable recipe, measured earlier
CHECK_GOAL_S = 0.3
CHANNEL_SIZES = (5, 50, 500)
CHECK_SPECS = 10


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDA_OVERRIDE_")}
    env.pop("LAYERKIT_CONDA", None)  # always the embedded solver: the same path on every machine
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run_once(cmd: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    p = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, p.returncode, p.stderr


def timed(cmd: Sequence[str], env: dict[str, str], runs: int = RUNS, warmup: int = 1) -> dict[str, Any]:
    """Median/min/max wall time of `runs` whole-process runs, after `warmup` untimed ones."""
    for _ in range(warmup):
        run_once(cmd, env)
    times, codes, err = [], set(), ""
    for _ in range(runs):
        t, code, stderr = run_once(cmd, env)
        times.append(t)
        codes.add(code)
        if code:
            err = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {code}"
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": runs,
        "exit_codes": sorted(codes),
        **({"error": err} if err else {}),
    }


# --------------------------------------------------------------------------- 1. render / hash


def bench_cli(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """Each command twice: cold (memo off: the whole computation) and as a memo hit (the
    untimed warm-up run stores the result; layerkit/memo.py re-checks its inputs and replays)."""
    out: dict[str, Any] = {}
    cold_env = {**env, "LAYERKIT_NO_CACHE": "1"}
    warm_env = {k: v for k, v in env.items() if k != "LAYERKIT_NO_CACHE"}
    warm_env["LAYERKIT_CACHE"] = str(tmp / "memo-cache")
    for spec in ("tests/specs/full-cpu.yaml", "tests/specs/gpu-cuda11.8.yaml"):
        for cmd in ("render", "hash"):
            log(f"{cmd} {spec} x{RUNS} cold, x{RUNS} memo hit")
            out[f"{cmd} {spec}"] = timed([PY, "-m", "layerkit", "-q", cmd, spec], cold_env)
            out[f"{cmd} {spec} (memo hit)"] = timed([PY, "-m", "layerkit", "-q", cmd, spec], warm_env)
    return out


def hpccm_install(cache: Path) -> tuple[Path | None, str]:
    """pip install hpccm into a private --target dir (reused across runs); never into this env."""
    target = cache / "hpccm"
    if (target / "hpccm" / "cli.py").is_file():
        return target, "cached"
    log(f"pip install hpccm --target {target}")
    p = subprocess.run(
        [
            PY,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "hpccm",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode or not (target / "hpccm" / "cli.py").is_file():
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR")] or ["pip failed"]
        return None, lines[-1]
    return target, "installed"


def bench_hpccm(tmp: Path, cache: Path, skip: bool) -> dict[str, Any]:
    if skip:
        return {"available": False, "why": "skipped (--no-hpccm)"}
    target, how = hpccm_install(cache)
    if target is None:
        return {"available": False, "why": f"pip install hpccm failed: {how}"}
    recipe = tmp / "hpccm-recipe.py"
    recipe.write_text(specgen.HPCCM_RECIPE)
    script = target / "bin" / "hpccm"  # the console script, as a user runs it
    cmd = (
        [PY, str(script)]
        if script.is_file()
        else [PY, "-c", "import sys; from hpccm.cli import main; sys.exit(main())"]
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    log(f"hpccm --recipe x{RUNS}")
    res = timed([*cmd, "--recipe", str(recipe)], env)
    version = subprocess.run(
        [PY, "-c", "import hpccm; print(hpccm.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {"available": True, "install": how, "version": version, **res}


# --------------------------------------------------------------------------- imports


def bench_imports(env: dict[str, str]) -> dict[str, Any]:
    log(f"start-up figures x{RUNS}")
    return {
        "python -c pass": timed([PY, "-c", "pass"], env),
        "python -c 'import layerkit.cli'": timed([PY, "-c", "import layerkit.cli"], env),
        "python -m layerkit --version": timed([PY, "-m", "layerkit", "--version"], env),
    }


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """The `-X importtime` report as a tree: nodes with name, self_us, cum_us and children."""
    pending: list[tuple[int, dict[str, Any]]] = []  # post-order: children come before parents
    for line in stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        depth = (len(parts[2]) - len(parts[2].lstrip()) - 1) // 2
        node = {"name": parts[2].strip(), "self_us": int(parts[0]), "cum_us": int(parts[1]), "children": []}
        while pending and pending[-1][0] > depth:
            node["children"].insert(0, pending.pop()[1])
        pending.append((depth, node))
    return [n for _, n in pending]


def import_profile(cmd: Sequence[str], env: dict[str, str], top: int = 6) -> dict[str, Any]:
    """Where the start-up of `cmd` goes (one `-X importtime` run after a warm one).

    total: every import; layerkit_self: layerkit's own modules (module bodies, model classes);
    entries: packages layerkit imports directly, each with its whole subtree (disjoint).
    """
    run_once([PY, *cmd], env)
    _, _, stderr = run_once([PY, "-X", "importtime", *cmd], env)
    roots = parse_importtime(stderr)
    entries: dict[str, dict[str, Any]] = {}
    own = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal own
        if node["name"].split(".")[0] != "layerkit":
            return
        own += node["self_us"]
        for child in node["children"]:
            pkg = child["name"].split(".")[0]
            if pkg == "layerkit":
                walk(child)
                continue
            e = entries.setdefault(pkg, {"module": pkg, "cumulative_ms": 0.0, "via": []})
            e["cumulative_ms"] += child["cum_us"] / 1000
            if node["name"] not in e["via"]:
                e["via"].append(node["name"])

    seen_layerkit = False
    for root in roots:
        pkg = root["name"].split(".")[0]
        seen_layerkit = seen_layerkit or pkg == "layerkit"
        if pkg == "layerkit":
            walk(root)
        elif seen_layerkit:  # imported inside a function, after start-up: lazy imports
            e = entries.setdefault(pkg, {"module": pkg, "cumulative_ms": 0.0, "via": []})
            e["cumulative_ms"] += root["cum_us"] / 1000
            if "(lazy)" not in e["via"]:
                e["via"].append("(lazy)")
    ranked = sorted(entries.values(), key=lambda e: -e["cumulative_ms"])
    return {
        "total_ms": sum(r["cum_us"] for r in roots) / 1000,
        "layerkit_ms": sum(r["cum_us"] for r in roots if r["name"].split(".")[0] == "layerkit") / 1000
        + sum(e["cumulative_ms"] for e in entries.values() if "(lazy)" in e["via"]),
        "site_ms": sum(r["cum_us"] for r in roots if r["name"] == "site") / 1000,
        "layerkit_self_ms": own / 1000,
        "entries": ranked[:top],
    }


# --------------------------------------------------------------------------- 2. 100 specs


def bench_many(tmp: Path) -> dict[str, Any]:
    specs = specgen.write_variants(tmp / "variants", 100)
    log(f"api.render on {len(specs)} generated specs, one process")
    t0 = time.perf_counter()
    from layerkit import api

    import_s = time.perf_counter() - t0
    per: list[float] = []
    failures: list[str] = []
    t_all = time.perf_counter()
    for spec in specs:
        t = time.perf_counter()
        try:
            api.render(spec, auto_lock=False)
        except Exception as e:  # a failure is a result to report, not a crash of the benchmark
            failures.append(f"{spec.name}: {type(e).__name__}: {e}")
        per.append(time.perf_counter() - t)
    total = time.perf_counter() - t_all
    return {
        "specs": len(specs),
        "import_api_s": import_s,
        "total_s": total,
        "per_spec_s": total / len(specs),
        "first_s": per[0],
        "median_s": statistics.median(per),
        "max_s": max(per),
        "failures": failures,
    }


# --------------------------------------------------------------------------- 3. lock


def bench_lock(tmp: Path) -> dict[str, Any]:
    import fixtures_channels as fx

    results: dict[str, Any] = {"sizes": [], "check": {}}
    locked: list[Path] = []
    stops: list[Callable[[], None]] = []
    urls: dict[int, str] = {}
    try:
        for n in CHANNEL_SIZES:
            t = time.perf_counter()
            root = fx.make_channel(tmp / f"chan{n}", specgen.channel_packages(n))
            build_s = time.perf_counter() - t
            url, stop = fx.serve_channel(root)
            stops.append(stop)
            urls[n] = url
            env = base_env(
                RATTLER_CACHE_DIR=str(tmp / f"rattler-cache{n}"), LAYERKIT_CACHE=str(tmp / f"lk-cache{n}")
            )
            spec = specgen.write_lock_spec(tmp / f"lock{n}", url, specgen.channel_deps(n))
            log(f"lock: {n}-package channel")
            secs, code, err = run_once([PY, "-m", "layerkit", "-q", "lock", str(spec)], env)
            row: dict[str, Any] = {
                "packages": n,
                "channel_build_s": build_s,
                "lock_s": secs,
                "exit_code": code,
            }
            if code:
                row["error"] = (err.strip().splitlines() or [f"exit {code}"])[-1]
            else:
                locked.append(spec)
            results["sizes"].append(row)
        # More locked specs for --check: subsets of the 50-package channel (7 more -> 10 in all).
        if len(results["sizes"]) > 1 and results["sizes"][1]["exit_code"] == 0:
            env = base_env(
                RATTLER_CACHE_DIR=str(tmp / "rattler-cache50"), LAYERKIT_CACHE=str(tmp / "lk-cache50")
            )
            extra = CHECK_SPECS - len(locked)
            log(f"lock: {extra} more specs for --check")
            for i in range(extra):
                deps = specgen.channel_deps(50)[: 5 + 6 * i]
                spec = specgen.write_lock_spec(tmp / f"check{i}", urls[50], deps, env_var=f"V{i}")
                _, code, _ = run_once([PY, "-m", "layerkit", "-q", "lock", str(spec)], env)
                if code == 0:
                    locked.append(spec)
    finally:
        for stop in stops:
            stop()  # --check must not need the channels
    env = base_env(RATTLER_CACHE_DIR=str(tmp / "rattler-check"), LAYERKIT_CACHE=str(tmp / "lk-check"))
    if locked:
        log(f"lock --check on {len(locked)} locked specs (one warm-up, then one run each)")
        run_once([PY, "-m", "layerkit", "lock", "--check", str(locked[0])], env)
        times, codes = [], []
        for spec in locked:
            t, code, _ = run_once([PY, "-m", "layerkit", "lock", "--check", str(spec)], env)
            times.append(t)
            codes.append(code)
        results["check"] = {
            "specs": len(locked),
            "median_s": statistics.median(times),
            "max_s": max(times),
            "min_s": min(times),
            "exit_codes": sorted(set(codes)),
            "goal_s": CHECK_GOAL_S,
        }
        results["check_imports"] = import_profile(["-m", "layerkit", "lock", "--check", str(locked[-1])], env)
    return results


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    ap.add_argument("--no-hpccm", action="store_true", help="do not install or time hpccm")
    ap.add_argument("--no-lock", action="store_true", help="skip the lock section")
    ap.add_argument("--no-build", action="store_true", help="skip the build section (needs root)")
    args = ap.parse_args(argv)

    env = base_env()
    cache = Path(tempfile.gettempdir()) / "layerkit-bench-cache"
    cache.mkdir(exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="layerkit-bench-") as d:
        tmp = Path(d)
        result: dict[str, Any] = {
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "runs": RUNS,
            "hpccm_reference_s": HPCCM_REFERENCE_S,
        }
        result["cli"] = bench_cli(env, tmp)
        result["hpccm"] = bench_hpccm(tmp, cache, args.no_hpccm)
        result["startup"] = bench_imports(env)
        result["render_imports"] = import_profile(
            ["-m", "layerkit", "-q", "render", "tests/specs/full-cpu.yaml"], {**env, "LAYERKIT_NO_CACHE": "1"}
        )
        result["many"] = bench_many(tmp)
        if not args.no_lock:
            result["lock"] = bench_lock(tmp)
        if not args.no_build:
            import build_bench  # bench/build_bench.py: real dockerd + registry

            result["build"] = build_bench.run(tmp, log)
    result["bench_wall_s"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
