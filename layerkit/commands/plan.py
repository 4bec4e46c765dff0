"""`layerkit plan SPEC... [--json]`: what `layerkit build` would do, for other build tools."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from layerkit.commands import (
    add_engine_argument,
    add_image_arguments,
    add_lock_arguments,
    add_signature_arguments,
    add_spec_argument,
    lock_of,
    out,
    warn,
)
from layerkit.errors import SpecError

if TYPE_CHECKING:
    from layerkit.build.decisions import EnvDecision
    from layerkit.build.indexplan import IndexPlan


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p, many=True)
    add_lock_arguments(p, many=True, platform_default="every platform of each spec")
    add_image_arguments(p)
    add_engine_argument(p, "the engine `build --addr` would use (where registry-less images live)")
    add_signature_arguments(p, sign=False)
    p.add_argument("--offline", action="store_true", help="ask no registry or engine (action: unchecked)")
    p.add_argument("--json", action="store_true", help="the layerkit.plan/1 document on stdout")


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.build.builder import BuildOptions
    from layerkit.build.indexplan import plan_document

    if args.lock and len(args.spec) > 1:
        raise SpecError("--lock names one lockfile: give one SPEC with it")
    opts = BuildOptions(
        addr=args.addr,
        registry=args.registry,
        tags=tuple(args.tag),
        name_tag=not args.no_name_tag,
        require_signature=args.require_signature,
    )
    lock, auto = lock_of(args)
    plans = []
    for spec in args.spec:
        p = api.plan(spec, lock, args.platform, auto, options=opts, offline=args.offline)
        warn(args, p.warnings)
        plans.append(p)
    if args.json:
        out(json.dumps(plan_document(plans), indent=2, sort_keys=True) + "\n")
    else:
        out("".join(_human(p) for p in plans))
    return 0


def _human(p: EnvDecision | IndexPlan) -> str:
    """One line per environment; an image index's platforms below it, indented."""
    from layerkit.build.indexplan import IndexPlan

    line = f"{p.action:9} {p.image}  {p.spec}\n"
    if isinstance(p, IndexPlan):
        line += "".join(f"  {e.action:9} {e.image}  {e.platform}\n" for e in p.platforms)
    return line
