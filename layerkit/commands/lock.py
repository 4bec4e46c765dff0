"""`layerkit lock SPEC [--check]`: resolve the spec with conda-lock into <stem>.conda-lock.yml."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from layerkit.commands import add_spec_argument, out, warn
from layerkit.errors import EXIT_OK, CheckFailed


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p)
    p.add_argument(
        "--lockfile", type=Path, help="lockfile path (default: <stem>.conda-lock.yml beside the spec)"
    )
    p.add_argument(
        "--check", action="store_true", help="exit 0 if the lock is fresh, 1 if stale; never solves"
    )
    p.add_argument("--update", nargs="+", metavar="NAME", help="update only these packages")
    p.add_argument(
        "--no-pin-base",
        action="store_true",
        help="do not record the base images' digests (default: asked from their registries)",
    )
    p.add_argument(
        "--conda", help="conda/mamba/micromamba executable (default: $LAYERKIT_CONDA, PATH, embedded solver)"
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from layerkit import api, pipeline

    # A fresh lock proves its specs went through the solver's parser: --check loads no solver.
    checked = api.check_spec(args.spec, solver_grammar=not args.check)
    lockfile = args.lockfile or api.default_lock_path(args.spec)
    if args.check:
        try:
            spec_hash = pipeline.check_lock(checked, lockfile)
        except CheckFailed:
            api.check_grammar(checked)  # a bad spec is bad input (2), not a stale lock (1)
            raise
        if args.json:
            out(json.dumps({"lockfile": str(lockfile), "fresh": True, "spec_hash": spec_hash}) + "\n")
        return EXIT_OK
    warn(args, checked.warnings)
    lk, explicit = api.lock(
        checked,
        lockfile,
        update=args.update,
        solver=args.conda,
        pin_base=not args.no_pin_base,
        on_warning=lambda w: warn(args, (w,)),
    )
    path = Path(lk.source)
    if args.json:
        counts = {p: len(lk.for_platform(p, "conda")) + len(lk.for_platform(p, "pip")) for p in lk.platforms}
        doc = {
            "lockfile": str(path),
            "spec_hash": lk.spec_hash,
            "packages": counts,
            "explicit": [str(e) for e in explicit],
            "base_digests": dict(lk.base_digests),
        }
        out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        print(
            f"locked {len(lk.packages)} packages for {', '.join(lk.platforms)} into {path}", file=sys.stderr
        )
        out(f"{path}\n")
    return EXIT_OK
