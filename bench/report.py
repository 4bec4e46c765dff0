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


def table(r: dict[str, Any]) -> str:
    out: list[str] = [
        f"layerkit benchmark  (python {r['python']}, {r['cpus']} cpus, median of {r['runs']} runs "
        "after 1 warm-up unless noted; wall-clock seconds)",
        "",
        "1. Whole process: python -m layerkit -q CMD SPEC (cold: memo off; memo hit: inputs unchanged)",
    ]
    rows = []
    for name, t in r["cli"].items():
        note = "" if t["exit_codes"] == [0] else f"exit {t['exit_codes']} {t.get('error', '')}"
        rows.append([name, _s(t["median_s"]), _s(t["min_s"]), _s(t["max_s"]), note])
    out += _grid(["command", "median", "min", "max", "note"], rows)

    ref = r["hpccm_reference_s"]
    hp = r["hpccm"]
    out += ["", "   Goal: a single render faster than hpccm's whole-process render of a comparable recipe"]
    for label, key in (("cold", ""), ("memo hit", " (memo hit)")):
        render = r["cli"][f"render tests/specs/full-cpu.yaml{key}"]["median_s"]
        out.append(
            f"   render full-cpu.yaml, {label}: {_s(render)} vs reference {_s(ref)}: ratio "
            f"{_ratio(render, ref)} -> {_verdict(render, ref)}"
        )
        if hp.get("available"):
            out.append(
                f"     vs hpccm measured this run: render/hpccm ratio {_ratio(render, hp['median_s'])} "
                f"-> {_verdict(render, hp['median_s'])}"
            )
    if hp.get("available"):
        hps = hp["median_s"]
        out.append(
            f"   hpccm {hp.get('version', '?')} measured this run ({hp['install']}): `hpccm --recipe` "
            f"median {_s(hps)} (min {_s(hp['min_s'])})"
        )
        if hp["exit_codes"] != [0]:
            out.append(f"   hpccm exited {hp['exit_codes']}: {hp.get('error', '')}")
    else:
        out.append(f"   hpccm not measured: {hp['why']}")

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
    imp = st["python -c 'import layerkit.cli'"]["median_s"]
    ver = st["python -m layerkit --version"]["median_s"]
    out.append(f"   import layerkit.cli / --version ratio: {_ratio(imp, ver)}")
    out += ["", "   Imports of `render full-cpu.yaml` (-X importtime, one run):"]
    out += _profile(r["render_imports"])

    m = r["many"]
    out += [
        "",
        f"2. {m['specs']} generated specs rendered in one process (api.render(path, auto_lock=False))",
        f"   import layerkit.api {_s(m['import_api_s'])}; total {_s(m['total_s'])}; per spec {_ms(m['per_spec_s'])} "
        f"(first {_ms(m['first_s'])}, median {_ms(m['median_s'])}, max {_ms(m['max_s'])})",
    ]
    if m["failures"]:
        out.append(f"   {len(m['failures'])} failed, e.g. {m['failures'][0]}")

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
        c = lk.get("check")
        if c:
            out += [
                "",
                f"   lock --check on {c['specs']} locked specs (whole process, one run each, channels stopped):",
                f"   median {_s(c['median_s'])}, max {_s(c['max_s'])}, min {_s(c['min_s'])}, exit codes {c['exit_codes']}; "
                f"goal <= {c['goal_s']} s: median {_verdict(c['median_s'], c['goal_s'])}, "
                f"max {_verdict(c['max_s'], c['goal_s'])} (max/goal {_ratio(c['max_s'], c['goal_s'])})",
                "   Imports of `lock --check` (-X importtime, one run):",
            ]
            out += _profile(lk["check_imports"])
    if "build" in r:
        import build_bench

        out += ["", *build_bench.table(r["build"])]
    out += ["", f"benchmark wall time {_s(r['bench_wall_s'])}"]
    return "\n".join(out)
