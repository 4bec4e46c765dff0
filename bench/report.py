"""The readable table `bench/run.py` prints (the --json output carries the same figures)."""

from __future__ import annotations

from typing import Any


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f} ms"


def _grid(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def _verdict(value: float, goal: float) -> str:
    return "meets goal" if value <= goal else "misses goal"


def _profile(p: dict[str, Any]) -> list[str]:
    lines = [
        f"     all imports {p['total_ms']:.1f} ms (site/.pth start-up {p['site_ms']:.1f} ms); "
        f"layerkit and what it pulls in {p['layerkit_ms']:.1f} ms, of which layerkit's own module "
        f"bodies {p['layerkit_self_ms']:.1f} ms",
        "     heaviest packages layerkit imports (cumulative, whole subtree):",
    ]
    for e in p["entries"]:
        lines.append(f"       {e['module']:<14} {e['cumulative_ms']:7.1f} ms  via {', '.join(e['via'][:3])}")
    return lines


def _row(name: str, t: dict[str, Any]) -> list[str]:
    note = "" if t["exit_codes"] == [0] else f"exit {t['exit_codes']} {t.get('error', '')}"
    return [name, _s(t["median_s"]), f"{_s(t['min_s'])} - {_s(t['max_s'])}", note]


def _goal(label: str, t: dict[str, Any], goal: float) -> str:
    m = t["median_s"]
    miss = "" if m <= goal else f" by {_s(m - goal)} ({_ratio(m, goal)} the goal)"
    return f"   {label}: median {_s(m)} (min-max {_s(t['min_s'])} - {_s(t['max_s'])}); goal <= {goal} s: {_verdict(m, goal)}{miss}"


def _peers(r: dict[str, Any]) -> list[str]:
    out = [
        "",
        "   Peers (same run, in turn, same protocol; installed into .cache/peers, not layerkit's env):",
    ]
    rows = []
    for name, p in r["peers"].items():
        if name == "floor":
            continue
        if "median_s" not in p:
            rows.append([name, "-", "-", f"not measured: {p['why']}"])
            continue
        rows.append(_row(f"{name} {p['version']}", p))
    out += ["   " + ln for ln in _grid(["peer", "median", "min - max", "note"], rows)]
    for name, p in r["peers"].items():
        if "command" in p:
            out.append(f"     {name}: {p['command']}")
    if "floor" in r["peers"]:
        out.append(
            f"     the peers' interpreter alone (python -c pass): median {_s(r['peers']['floor']['median_s'])}"
        )
    out += ["", "   Ratio layerkit / peer (medians; below 1.00x: layerkit is faster):"]
    rows = []
    for cmd, t in r["cli"].items():
        row = [cmd]
        for name, p in r["peers"].items():
            if name != "floor":
                row.append(_ratio(t["median_s"], p["median_s"]) if "median_s" in p else "n/a")
        rows.append(row)
    names = [n for n in r["peers"] if n != "floor"]
    out += ["   " + ln for ln in _grid(["layerkit command", *names], rows)]
    return out


def table(r: dict[str, Any]) -> str:
    out: list[str] = [
        f"layerkit benchmark  (python {r['python']}, {r['cpus']} cpus; every figure: {r['runs']} whole-process "
        f"runs after 1 warm-up, fresh HOME and cache dir each run, timed by {r['timer']}; wall-clock seconds)",
        "",
        "1. python -m layerkit -q CMD SPEC, cold",
    ]
    out += _grid(["command", "median", "min - max", "note"], [_row(k, t) for k, t in r["cli"].items()])
    out += _peers(r)

    st = r["startup"]
    base = st["python -c pass"]["median_s"]
    out += ["", "   Start-up (whole process, median):"]
    out += [
        "   " + ln
        for ln in _grid(
            ["command", "median", "over bare python"],
            [[k, _s(v["median_s"]), _s(v["median_s"] - base)] for k, v in st.items()],
        )
    ]
    out += ["", "   Imports of `render full-cpu.yaml` (-X importtime, one cold run):"]
    out += _profile(r["render_imports"])

    m = r["many"]
    out += ["", f"2. python -m layerkit -q validate on {m['specs']} generated specs, one process, cold"]
    out += _grid(["command", "median", "min - max", "note"], [_row(f"validate x{m['specs']}", m)])

    lk = r.get("lock")
    if lk is None:
        out += ["", "3. lock: skipped (--no-lock)"]
    else:
        out += [
            "",
            "3. python -m layerkit lock SPEC, embedded solver, local channel on 127.0.0.1, cold caches, 1 run",
        ]
        rows = [
            [
                str(s["packages"]),
                _s(s["channel_build_s"]),
                _s(s["lock_s"]),
                "ok" if s["exit_code"] == 0 else f"exit {s['exit_code']}: {s.get('error', '')}",
            ]
            for s in lk["sizes"]
        ]
        out += ["   " + ln for ln in _grid(["packages", "make_channel", "lock", "result"], rows)]
        if "lock_check" in lk:
            c, k = lk["lock_check"], lk["check"]
            out += [
                "",
                "   channels stopped; exit codes: lock --check "
                f"{c['exit_codes']}, check {k['exit_codes']} {k.get('error', '')}",
                _goal("lock --check SPEC (the largest locked spec)", c, c["goal_s"]),
                _goal(f"check SPEC x{k['specs']} (one process)", k, k["goal_s"]),
                "   Imports of `lock --check` (-X importtime, one cold run):",
            ]
            out += _profile(lk["check_imports"])
    sk = r.get("skip")
    if sk is None:
        out += ["", "4. skip by hash: skipped (--no-skip)"]
    elif not sk["available"]:
        out += ["", f"4. skip by hash: not measured: {sk['why']}"]
    else:
        out += [
            "",
            "4. skip by hash: python -m layerkit build --addr <no daemon> SPEC, image in a real registry "
            f"on loopback (action: {sk['action']})",
            _goal("build (found)", sk, sk["goal_s"]),
        ]
    if "build" in r:
        import build_bench

        out += ["", *build_bench.table(r["build"])]
    if "delta" in r:
        import delta_bench

        out += ["", *delta_bench.table(r["delta"])]
    if "multiplatform" in r:
        import multiplatform_bench

        out += ["", *multiplatform_bench.table(r["multiplatform"])]
    out += ["", f"benchmark wall time {_s(r['bench_wall_s'])}"]
    return "\n".join(out)
