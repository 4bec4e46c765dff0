"""`layerkit hash SPEC`: the environment hash (what names the image and decides skip-by-hash).
A spec with several platforms: the image index's hash, over each platform's (--platform P
prints that one platform's)."""

from __future__ import annotations

import argparse
import json

from layerkit.commands import add_lock_arguments, add_spec_argument, lock_of, out
from layerkit.digest import HASH_SCHEMA
from layerkit.errors import EXIT_OK


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p)
    add_lock_arguments(p, platform_default="every platform: the image index's hash when the spec has several")
    p.add_argument("--json", action="store_true", help="JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from layerkit import api

    lock, auto = lock_of(args)
    if args.platform is None and len(api.load(args.spec).spec.platforms or ()) > 1:
        index = api.hash_index(args.spec, lock, auto)
        if args.json:
            doc = {
                "hash": index.hash,
                "schema": HASH_SCHEMA,
                "platforms": {p: h.hash for p, h in sorted(index.platforms.items())},
            }
            out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        else:
            out(index.hash + "\n")
        return EXIT_OK
    h = api.hash_spec(args.spec, lock, args.platform, auto)
    if args.json:
        doc = {
            "hash": h.hash,
            "schema": HASH_SCHEMA,
            "stages": h.stages,
            "parts": h.parts,
            "part_digests": h.part_digests(),
        }
        out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        out(h.hash + "\n")
    return EXIT_OK
