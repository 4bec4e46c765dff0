"""`layerkit validate SPEC...`: check specs; each bad one is reported on one line, then exit 2."""

from __future__ import annotations

import argparse
import json
import sys

from layerkit.commands import add_spec_argument, out, warn
from layerkit.errors import EXIT_OK, SpecError, error_line


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p, many=True)
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")


def run(args: argparse.Namespace) -> int:
    from layerkit import api

    report: list[dict[str, object]] = []
    for spec in args.spec:
        try:
            checked = api.check_spec(spec)
        except SpecError as exc:
            line = error_line(exc.location, exc.message)
            print(line, file=sys.stderr)
            report.append({"spec": str(spec), "ok": False, "error": line})
            continue
        warn(args, checked.warnings)
        report.append({"spec": str(spec), "ok": True, "warnings": list(checked.warnings)})
    if args.json:
        out(json.dumps(report, indent=2) + "\n")
    return EXIT_OK if all(r["ok"] for r in report) else SpecError.exit_code
