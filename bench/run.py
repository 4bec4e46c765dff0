"""layerkit benchmark: figures and ratios measured in one run; never asserts on timing.

    python3 bench/run.py            # readable table on stdout (progress on stderr)
    python3 bench/run.py --json     # the same figures as JSON on stdout

Every figure is a whole process started cold: a fresh HOME and cache dir for each run
(bench/cold.py; hyperfine times it when installed). Sections:
  1. `layerkit render|hash SPEC` against hpccm, `repo2docker --no-build` and neurodocker on
     comparable inputs (bench/peers.py), measured in turn in this run, with ratios;
  2. `layerkit validate` of 100 generated specs in one process;
  3. `layerkit lock` against synthetic local channels of 5, 50 and 500 packages, then
     `layerkit lock --check` (goal <= 0.15 s) and `layerkit check` of 10 locked specs
     (goal <= 0.3 s);
  4. the skip-by-hash decision: `layerkit build` of an image the registry has (goal <= 0.3 s);
  5. `layerkit build` cold / warm / pruned / skip-by-hash and image size (bench/build_bench.py);
  6. bytes pushed and pulled after a one-package change, split env layers vs one (bench/delta_bench.py);
  7. multi-platform: cold build of the cross-installed arm64 image vs amd64 and vs an emulated
     install (bench/multiplatform_bench.py);
  plus interpreter/import start-up figures and the imports that dominate render and lock --check.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
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

import cold  # noqa: E402  (bench/cold.py: cold whole-process timings)
import peers  # noqa: E402  (bench/peers.py: hpccm, repo2docker, neurodocker)
import report  # noqa: E402  (bench/report.py: table formatting)
import specgen  # noqa: E402  (bench/specgen.py: generated specs, channels and recipes)

PY = sys.executable
CHECK_GOAL_S = 0.3
LOCK_CHECK_GOAL_S = 0.15
SPECS = ("tests/specs/full-cpu.yaml", "tests/specs/gpu-cuda11.8.yaml")
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


# --------------------------------------------------------------------------- 1. render / hash vs peers


def bench_cli(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in SPECS:
        for cmd in ("render", "hash"):
            log(f"{cmd} {spec} x{cold.RUNS} cold")
            out[f"{cmd} {spec}"] = cold.timed([PY, "-m", "layerkit", "-q", cmd, spec], env, ROOT)
    return out


def bench_peers(tmp: Path, skip: bool) -> dict[str, Any]:
    if skip:
        return {p: {"why": "skipped (--no-peers)"} for p in peers.PEERS}
    venv = ROOT / ".cache" / "peers"
    found = peers.install(venv, log)
    cmds = peers.commands(venv, tmp / "peers", specgen.HPCCM_RECIPE)
    env = dict(os.environ)
    for name, info in found.items():
        if "version" in info:
            log(f"{name} x{cold.RUNS} cold")
            info.update(cold.timed(cmds[name], env, tmp, runs=cold.RUNS))
            info["command"] = shlex.join([Path(cmds[name][0]).name, *cmds[name][1:]])
    python = venv / "bin" / "python"
    if python.is_file():
        found["floor"] = cold.floor(str(python), env, tmp)
    return found


# --------------------------------------------------------------------------- imports


def bench_imports(env: dict[str, str]) -> dict[str, Any]:
    log(f"start-up figures x{cold.RUNS}")
    return {
        "python -c pass": cold.floor(PY, env, ROOT),
        "python -c 'import layerkit.cli'": cold.timed([PY, "-c", "import layerkit.cli"], env, ROOT),
        "python -m layerkit --version": cold.timed([PY, "-m", "layerkit", "--version"], env, ROOT),
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
    with tempfile.TemporaryDirectory(prefix="lk-cold-") as d:
        _, _, stderr = run_once([PY, "-X", "importtime", *cmd], cold.cold_env(env, Path(d)))
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


def bench_many(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    specs = specgen.write_variants(tmp / "variants", 100)
    log(f"validate {len(specs)} generated specs in one process x{cold.RUNS} cold")
    res = cold.timed([PY, "-m", "layerkit", "-q", "validate", *map(str, specs)], env, ROOT)
    return {"specs": len(specs), **res}


# --------------------------------------------------------------------------- 3. lock


def bench_lock(tmp: Path) -> dict[str, Any]:
    import fixtures_channels as fx

    results: dict[str, Any] = {"sizes": []}
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
    env = base_env()
    if locked:
        last = str(locked[-1])
        log(f"lock --check {Path(last).parent.name} x{cold.RUNS} cold")
        results["lock_check"] = {
            **cold.timed([PY, "-m", "layerkit", "lock", "--check", last], env, ROOT),
            "goal_s": LOCK_CHECK_GOAL_S,
        }
        log(f"check of {len(locked)} locked specs x{cold.RUNS} cold")
        results["check"] = {
            "specs": len(locked),
            **cold.timed([PY, "-m", "layerkit", "check", *map(str, locked)], env, ROOT),
            "goal_s": CHECK_GOAL_S,
        }
        results["check_imports"] = import_profile(["-m", "layerkit", "lock", "--check", last], env)
    return results


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    ap.add_argument("--no-peers", action="store_true", help="do not install or time the peers")
    ap.add_argument("--no-lock", action="store_true", help="skip the lock section")
    ap.add_argument("--no-skip", action="store_true", help="skip the skip-by-hash section (needs a registry)")
    ap.add_argument("--no-build", action="store_true", help="skip the build section (needs root)")
    ap.add_argument("--no-delta", action="store_true", help="skip the update-delta section (needs root)")
    ap.add_argument(
        "--no-multiplatform", action="store_true", help="skip the multi-platform section (needs root)"
    )
    args = ap.parse_args(argv)

    env = base_env()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="layerkit-bench-") as d:
        tmp = Path(d)
        result: dict[str, Any] = {
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "runs": cold.RUNS,
            "timer": cold.tool(),
        }
        result["cli"] = bench_cli(env)
        result["peers"] = bench_peers(tmp, args.no_peers)
        result["startup"] = bench_imports(env)
        result["render_imports"] = import_profile(["-m", "layerkit", "-q", "render", SPECS[0]], env)
        result["many"] = bench_many(env, tmp)
        if not args.no_lock:
            result["lock"] = bench_lock(tmp)
        if not args.no_skip:
            import skip  # bench/skip.py: a real registry on loopback

            result["skip"] = skip.run(ROOT, tmp, env, log)
        if not args.no_build:
            import build_bench  # bench/build_bench.py: real dockerd + registry

            result["build"] = build_bench.run(tmp, log)
        if not args.no_delta:
            import delta_bench  # bench/delta_bench.py: bytes an update sends, split vs one env layer

            result["delta"] = delta_bench.run(tmp, log)
        if not args.no_multiplatform:
            import multiplatform_bench  # bench/multiplatform_bench.py: arm64 cross vs native vs emulated

            result["multiplatform"] = multiplatform_bench.run(tmp, log)
    result["bench_wall_s"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
