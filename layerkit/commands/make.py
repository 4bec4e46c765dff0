"""`layerkit make [SPEC...]`: a Makefile fragment, one target chain per environment
(spec + layers -> lock -> rendered context -> image stamp named by the hash)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layerkit.commands import out
from layerkit.errors import SpecError


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "spec",
        type=Path,
        nargs="*",
        help="specs (default: files git tracks named layerkit.yaml or *.layerkit.yaml)",
    )
    p.add_argument("-o", "--output", type=Path, help="write the fragment to FILE (atomically), not stdout")
    p.add_argument(
        "--stamps",
        type=Path,
        default=Path(".layerkit/images"),
        metavar="DIR",
        help="where image stamps go: DIR/NAME/HASH holds the image ref (default: .layerkit/images)",
    )


def run(args: argparse.Namespace) -> int:
    from layerkit import api, atomic

    fragment = api.make_fragment(args.spec or None, stamps=args.stamps)
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(args.output, fragment.text)
        except OSError as exc:
            raise SpecError(f"{args.output}: cannot write the fragment: {exc.strerror or exc}") from None
        print(f"wrote {len(fragment.envs)} environment(s) to {args.output}", file=sys.stderr)
    else:
        out(fragment.text)
    return 0
