"""`layerkit build SPEC`: build the image through BuildKit and push it, skipped by hash."""

from __future__ import annotations

import argparse
import sys

from layerkit.commands import (
    add_build_arguments,
    add_signature_arguments,
    add_spec_argument,
    build_options,
    lock_of,
    out,
    warn,
)
from layerkit.errors import EXIT_OK


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p)
    add_build_arguments(p)
    add_signature_arguments(p)
    p.add_argument("--json", action="store_true", help="JSON result on stdout")
    p.add_argument(
        "--inference",
        action="store_true",
        help="build the inference image: the environment with its serve: section's model server on top",
    )


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.build.summary import render as render_summary

    opts = build_options(args)
    lock, auto = lock_of(args)
    result = (api.build_inference if args.inference else api.build)(
        args.spec, lock, args.platform, auto, options=opts, on_warning=lambda w: warn(args, (w,))
    )
    stdout, summary = render_summary(result.to_json(), args.json)
    sys.stderr.write(summary)
    out(stdout)
    return EXIT_OK
