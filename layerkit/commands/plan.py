"""`layerkit plan SPEC... [--json]`: what `layerkit build` would do, for other build tools."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layerkit.commands import out, warn
from layerkit.errors import SpecError

HELP = "show what `build` would do (hash, image, registry state, cache, steps); --json for tools"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, nargs="+", help="layerkit.yaml, environment.yml or hosted JSON")
    p.add_argument(
        "--lock", type=Path, help="lockfile (one SPEC only; default: <stem>.conda-lock.yml beside it)"
    )
    p.add_argument("--no-lock", action="store_true", help="ignore the default lockfiles")
    p.add_argument("--platform", help="target platform (default: each spec's first)")
    p.add_argument("--registry", help="workspace registry (default: the spec's registry.address)")
    p.add_argument("--addr", help="the engine `build --addr` would use (where registry-less images live)")
    p.add_argument("--tag", action="append", default=[], help="extra tag (repeatable)")
    p.add_argument("--no-name-tag", action="store_true", help="do not tag the image NAME-VERSION")
    p.add_argument("--offline", action="store_true", help="ask no registry or engine (action: unchecked)")
    p.add_argument("--json", action="store_true", help="the layerkit.plan/1 document on stdout")


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.build.builder import BuildOptions
    from layerkit.build.buildplan import plan_document

    if args.lock and len(args.spec) > 1:
        raise SpecError("--lock names one lockfile: give one SPEC with it")
    opts = BuildOptions(
        addr=args.addr, registry=args.registry, tags=tuple(args.tag), name_tag=not args.no_name_tag
    )
    plans = []
    for spec in args.spec:
        p = api.plan(spec, None if args.no_lock else args.lock, args.platform, not args.no_lock,
                     options=opts, offline=args.offline)  # fmt: skip
        warn(args, p.warnings)
        plans.append(p)
    if args.json:
        out(json.dumps(plan_document(plans), indent=2, sort_keys=True) + "\n")
    else:
        out("".join(f"{p.action:9} {p.image}  {p.spec}\n" for p in plans))
    return 0
