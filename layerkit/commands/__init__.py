"""CLI subcommands with modules of their own (see MODULE_COMMANDS in layerkit.cli).

Each module has HELP, configure(parser) and run(args) -> exit code; it imports its heavy
parts inside run() so `layerkit --help` stays fast. Errors are raised (LayerkitError), never
printed here: layerkit.cli.main maps them to exit codes.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from layerkit.build.tls import TLSConfig


def out(text: str) -> None:
    """Machine output: stdout only."""
    sys.stdout.write(text)
    sys.stdout.flush()


def warn(args: argparse.Namespace, warnings: tuple[str, ...] | list[str]) -> None:
    """Warnings on stderr, once each, unless -q."""
    if not getattr(args, "quiet", False):
        for w in dict.fromkeys(warnings):
            print(w, file=sys.stderr)


def add_tls_arguments(p: argparse.ArgumentParser) -> None:
    tls = p.add_argument_group(
        "TLS for tcp:// buildkitd (default: $LAYERKIT_TLS_CA, _CERT, _KEY, _SERVER_NAME)"
    )
    tls.add_argument("--tls-ca", metavar="FILE", help="CA certificate that signed the daemon's certificate")
    tls.add_argument("--tls-cert", metavar="FILE", help="client certificate (mutual TLS)")
    tls.add_argument("--tls-key", metavar="FILE", help="client key (mutual TLS)")
    tls.add_argument("--tls-server-name", metavar="NAME", help="name to verify in the daemon's certificate")


def tls_from_args(args: argparse.Namespace) -> TLSConfig | None:
    from layerkit.build.tls import TLSConfig

    return TLSConfig.from_options(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
