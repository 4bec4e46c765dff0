"""`layerkit outdated SPEC...`: are the base images recorded in the locks still what their
registries serve? Exit 1 when any environment is behind, 3 when a registry could not tell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layerkit.commands import out, warn
from layerkit.errors import EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, EXIT_OK

SCHEMA = "layerkit.outdated/1"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "spec", type=Path, nargs="+", help="layerkit.yaml (its lock beside it: <stem>.conda-lock.yml)"
    )
    p.add_argument("--json", action="store_true", help=f"the {SCHEMA} document on stdout")


def run(args: argparse.Namespace) -> int:
    from layerkit import api

    reports = [api.outdated(spec) for spec in args.spec]
    unknown = [b for r in reports for b in r.bases if b.status == "unknown"]
    warn(
        args,
        [
            f"{r.spec}: warning: {b.ref}: {b.detail}"
            for r in reports
            for b in r.bases
            if b.status == "unpinned"
        ],
    )
    warn(args, [f"layerkit: error: cannot tell whether {b.ref} moved: {b.detail}" for b in unknown])
    if args.json:
        doc = {"schema": SCHEMA, "environments": [r.to_json() for r in reports]}
        out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        lines = []
        for r in reports:
            for b in r.bases:
                change = f" {b.locked} -> {b.current}" if b.status == "behind" else ""
                lines.append(f"{b.status:8} {r.spec} {b.ref}{change}\n")
        out("".join(lines))
    if any(r.behind for r in reports):
        return EXIT_CHECK_FAILED
    return EXIT_ENVIRONMENT if unknown else EXIT_OK
