"""`layerkit check [SPEC...]`: specs valid, locks fresh, committed build contexts current.
The `layerkit-check` and `layerkit-render` pre-commit hooks run it (.pre-commit-hooks.yaml)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from layerkit.commands import out, warn


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "spec",
        type=Path,
        nargs="*",
        help="specs to check (default: files git tracks named layerkit.yaml or *.layerkit.yaml)",
    )
    p.add_argument(
        "--context",
        type=Path,
        metavar="DIR",
        help="rendered build context of the one SPEC (default: <stem>.context/ beside it, when git tracks it)",
    )
    p.add_argument(
        "--require-lock", action="store_true", help="a spec that installs packages must have a lock"
    )
    p.add_argument("--fix", action="store_true", help="rewrite stale rendered contexts (never relocks)")
    p.add_argument("--json", action="store_true", help="the layerkit.check/1 report on stdout")


def run(args: argparse.Namespace) -> int:
    from layerkit import api

    report = api.check(args.spec or None, context=args.context, require_lock=args.require_lock, fix=args.fix)
    for s in report.specs:
        warn(args, s.warnings)
        if s.error:
            print(s.error, file=sys.stderr)
        for p in s.problems:
            if p.severity == "error":
                print(p.line(), file=sys.stderr)
        warn(args, [p.line() for p in s.problems if p.severity == "warning"])
        ctx = s.context
        if ctx is not None and ctx.status == "fixed":
            changed = len(ctx.stale) + len(ctx.extra)
            print(f"{ctx.path}: rewrote {changed} file(s) rendered from {s.spec}", file=sys.stderr)
    if not report.specs:
        warn(args, ["layerkit: warning: no specs to check (no layerkit.yaml or *.layerkit.yaml in git)"])
    if args.json:
        out(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    return report.exit_code
