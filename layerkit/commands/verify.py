"""`layerkit verify SPEC`: rebuild from scratch and compare with the pushed image (issue 18).
Exit 0: the same digest; 1: another digest (one line per finding on stderr: the first differing
layer and file); 3: nothing pushed to compare with, or an engine that cannot build reproducibly."""

from __future__ import annotations

import argparse
import sys

from layerkit.commands import (
    add_engine_argument,
    add_lock_arguments,
    add_solve_arguments,
    add_spec_argument,
    add_tls_arguments,
    out,
    warn,
)
from layerkit.errors import EXIT_CHECK_FAILED, EXIT_OK, one_line


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p)
    add_lock_arguments(p)
    add_engine_argument(p)
    add_tls_arguments(p)
    p.add_argument("--registry", help="workspace registry (default: the spec's registry.address)")
    add_solve_arguments(p)
    p.add_argument("--json", action="store_true", help="the layerkit.verify/1 report on stdout")


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.build.builder import BuildOptions
    from layerkit.build.verify import dumps
    from layerkit.commands import lock_of, tls_from_args

    opts = BuildOptions(
        addr=args.addr,
        registry=args.registry,
        network=args.network,
        progress=args.progress,
        tls=tls_from_args(args),
    )
    lock, auto = lock_of(args)
    result = api.verify(
        args.spec, lock, args.platform, auto, options=opts, on_warning=lambda w: warn(args, (w,))
    )
    for f in result.findings:
        print(one_line(str(f)), file=sys.stderr)
    if result.ok:
        print(f"verified {result.image}: rebuilt from scratch as {result.rebuilt}", file=sys.stderr)
    else:
        print(f"{result.image}: recorded {result.recorded}, rebuilt {result.rebuilt}", file=sys.stderr)
    if args.json:
        out(dumps(result))
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED
