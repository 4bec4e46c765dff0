"""`layerkit show SPEC`: the merged spec with the origin of each value."""

from __future__ import annotations

import argparse

from layerkit.commands import add_spec_argument, out, warn
from layerkit.errors import EXIT_OK


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.spec.show import as_json, as_yaml

    # Checked as `validate` checks it: a spec validate refuses is not shown (exit 2).
    checked = api.check_spec(args.spec)
    warn(args, checked.warnings)
    resolved = checked.resolved
    out(as_json(resolved) if args.json else as_yaml(resolved))
    return EXIT_OK
