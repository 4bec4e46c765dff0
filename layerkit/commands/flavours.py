"""`layerkit flavours [--layers]`: the curated base flavours (with the platforms each has a
variant for, and where that was read), or the built-in layers."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from layerkit.commands import out
from layerkit.errors import EXIT_OK


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--layers", action="store_true", help="list the built-in layers (extends: [layerkit:NAME])"
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from layerkit.spec.catalog import load_catalog
    from layerkit.spec.merge import builtin_layers

    if args.layers:
        layers = builtin_layers()
        if args.json:
            out(json.dumps([dataclasses.asdict(x) for x in layers], indent=2) + "\n")
        else:
            out("".join(f"{x.extends:26} {x.description}\n" for x in layers))
        return EXIT_OK
    images = load_catalog().images
    if args.json:
        out(json.dumps([i.model_dump(mode="json", exclude_none=True) for i in images], indent=2) + "\n")
    else:
        # The platforms column is what a spec's `platforms:` may list with that flavour.
        width = max(len(i.id) for i in images)
        out("".join(f"{i.id:{width}}  {','.join(i.platforms):23}  {i.description}\n" for i in images))
        print("built-in layers (extends: [layerkit:NAME]): layerkit flavours --layers", file=sys.stderr)
    return EXIT_OK
