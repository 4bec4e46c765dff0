"""`layerkit render SPEC [-o DIR]`: print the Dockerfile, or write the whole build context."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from layerkit.commands import add_lock_arguments, add_spec_argument, lock_of, out, warn
from layerkit.errors import EXIT_OK


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p)
    add_lock_arguments(p, platform_default="the spec's first")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.add_argument(
        "-o", "--output", type=Path, help="context directory to write (default: print the Dockerfile)"
    )


def run(args: argparse.Namespace) -> int:
    from layerkit import api

    lock, auto = lock_of(args)
    rendered = api.render(args.spec, lock, args.platform, auto)
    warn(args, rendered.warnings)
    if rendered.plan.env_install and not rendered.plan.env_install.locked and not args.quiet:
        print(
            f"{args.spec}: warning: no lock found; the env stage installs the unlocked spec (run `layerkit lock`)",
            file=sys.stderr,
        )
    if args.output:
        written = api.write_context(rendered, args.output)
        if args.json:
            out(json.dumps({"hash": rendered.hash.hash, "files": [str(p) for p in written]}, indent=2) + "\n")
        else:
            print(f"wrote {len(written)} files to {args.output}", file=sys.stderr)
    elif args.json:
        out(
            json.dumps({"hash": rendered.hash.hash, "files": rendered.files}, indent=2, sort_keys=True) + "\n"
        )
    else:
        out(rendered.dockerfile)
    return EXIT_OK
