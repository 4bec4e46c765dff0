"""CLI subcommands with modules of their own (see MODULE_COMMANDS in layerkit.cli).

Each module has HELP, configure(parser) and run(args) -> exit code; it imports its heavy
parts inside run() so `layerkit --help` stays fast. Errors are raised (LayerkitError), never
printed here: layerkit.cli.main maps them to exit codes.
"""

from __future__ import annotations

import argparse
import sys


def out(text: str) -> None:
    """Machine output: stdout only."""
    sys.stdout.write(text)
    sys.stdout.flush()


def warn(args: argparse.Namespace, warnings: tuple[str, ...] | list[str]) -> None:
    """Warnings on stderr, once each, unless -q."""
    if not getattr(args, "quiet", False):
        for w in dict.fromkeys(warnings):
            print(w, file=sys.stderr)
