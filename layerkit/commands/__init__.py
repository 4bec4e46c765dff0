"""CLI subcommands, one module each (layerkit/commands/NAME.py, listed in layerkit.cli.COMMANDS).

Each module has configure(parser) and run(args) -> exit code; it imports its heavy
parts inside run() so `layerkit --help` stays fast. Errors are raised (LayerkitError), never
printed here: layerkit.cli.main maps them to exit codes. The options several commands share
are declared here, once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.errors import one_line

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions
    from layerkit.build.tls import TLSConfig


def out(text: str) -> None:
    """Machine output: stdout only."""
    sys.stdout.write(text)
    sys.stdout.flush()


def warn(args: argparse.Namespace, warnings: tuple[str, ...] | list[str]) -> None:
    """Warnings on stderr, once each, unless -q."""
    if not getattr(args, "quiet", False):
        for w in dict.fromkeys(warnings):
            print(one_line(w), file=sys.stderr)  # a warning may echo a value: one line, escaped


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


SPEC_HELP = "layerkit.yaml, environment.yml or hosted JSON"


def add_spec_argument(p: argparse.ArgumentParser, many: bool = False) -> None:
    p.add_argument("spec", type=Path, nargs="+" if many else None, help=SPEC_HELP)


def add_lock_arguments(
    p: argparse.ArgumentParser, many: bool = False, platform_default: str = "every platform of the spec"
) -> None:
    """--lock/--no-lock/--platform of every command that renders; `many`: it takes several specs;
    `platform_default`: what the command does without --platform."""
    where = (
        "one SPEC only; default: <stem>.conda-lock.yml beside it"
        if many
        else ("default: <stem>.conda-lock.yml beside the spec")
    )
    p.add_argument("--lock", type=Path, help=f"conda-lock.yml or explicit lock ({where})")
    p.add_argument(
        "--no-lock", action="store_true", help="ignore the default lockfile" + ("s" if many else "")
    )
    p.add_argument("--platform", help=f"one of the spec's platforms (default: {platform_default})")


def add_engine_argument(p: argparse.ArgumentParser, help_: str | None = None) -> None:
    p.add_argument(
        "--addr",
        help=help_
        or "BuildKit: unix://SOCK, tcp://HOST:PORT or docker://[DOCKER_HOST] "
        "(default: $BUILDKIT_HOST, else the Docker engine)",
    )


def add_image_arguments(p: argparse.ArgumentParser) -> None:
    """Where the image goes and what it is called: `build`, `run` and `plan`."""
    p.add_argument("--registry", help="workspace registry (default: the spec's registry.address)")
    p.add_argument("--tag", action="append", default=[], help="extra tag for the image (repeatable)")
    p.add_argument("--no-name-tag", action="store_true", help="do not tag the image NAME-VERSION")


def add_build_arguments(
    p: argparse.ArgumentParser,
    platform_default: str = "every platform of the spec: an image index when it has several",
) -> None:
    """What `build` and `run` share: lock and platform, BuildKit, registry, tags, progress."""
    add_lock_arguments(p, platform_default=platform_default)
    add_engine_argument(p)
    add_tls_arguments(p)
    add_image_arguments(p)
    p.add_argument("--no-push", action="store_true", help="build into the engine only")
    p.add_argument("--force", action="store_true", help="build even if the registry has the image")
    add_solve_arguments(p)


def add_solve_arguments(p: argparse.ArgumentParser) -> None:
    """How a solve runs and shows itself: every command that builds (`build`, `run`, `verify`)."""
    p.add_argument(
        "--network",
        choices=("default", "host", "none"),
        default="default",
        help="network of RUN steps (host: reach mirrors on 127.0.0.1; needs the network.host entitlement)",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "plain", "json", "quiet"),
        default="auto",
        help="build progress, on stderr",
    )


def add_signature_arguments(p: argparse.ArgumentParser, sign: bool = True) -> None:
    """cosign keys (a file, or any key reference cosign takes): `build` signs with one and
    gates reuse on the other; `plan` only gates. No transparency log is contacted."""
    if sign:
        p.add_argument(
            "--sign",
            metavar="KEY",
            help="sign every image the build pushes with this cosign private key "
            "(its password: $COSIGN_PASSWORD)",
        )
    p.add_argument(
        "--require-signature",
        metavar="PUBKEY",
        help="reuse an existing image (skip by hash, copy) only if its cosign signature "
        "verifies with this public key; otherwise build it again",
    )


def lock_of(args: argparse.Namespace) -> tuple[Path | None, bool]:
    """(explicit lockfile or None, whether to look for the default one) from add_lock_arguments."""
    return (None if args.no_lock else args.lock), not args.no_lock


def build_options(args: argparse.Namespace) -> BuildOptions:
    from layerkit.build.builder import BuildOptions

    return BuildOptions(
        addr=args.addr,
        registry=args.registry,
        push=not args.no_push,
        force=args.force,
        network=args.network,
        progress=args.progress,
        tags=tuple(args.tag),
        name_tag=not args.no_name_tag,
        tls=tls_from_args(args),
        sign_key=getattr(args, "sign", None),
        require_signature=getattr(args, "require_signature", None),
    )
