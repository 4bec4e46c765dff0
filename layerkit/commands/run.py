"""`layerkit run SPEC [options] -- COMMAND...`: build or reuse the image, run COMMAND in it with
the source directory mounted, stream its output and exit with its exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layerkit.commands import add_tls_arguments, tls_from_args, warn
from layerkit.errors import SpecError

HELP = "build or reuse the image and run a command in it with the source directory mounted"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="layerkit.yaml, environment.yml or hosted JSON")
    # The command itself follows `--` and is split off before parsing (layerkit.cli).
    p.usage = "layerkit run SPEC [options] -- COMMAND [ARG...]"
    p.add_argument("--source", type=Path, default=Path("."), help="directory to mount (default: .)")
    p.add_argument("--mount-at", help="where it appears in the container (default: runtime.workdir)")
    p.add_argument(
        "-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable"
    )
    p.add_argument("--user", help="user in the container (default: the image's runtime.user)")
    p.add_argument(
        "--run-network", choices=("default", "host", "none"), default="default", help="network of the command"
    )
    p.add_argument("--lock", type=Path, help="lockfile (default: <stem>.conda-lock.yml beside the spec)")
    p.add_argument("--no-lock", action="store_true", help="ignore the default lockfile")
    p.add_argument("--platform", help="target platform (default: the spec's first)")
    p.add_argument("--addr", help="BuildKit address, as for `build` (the command runs on the Docker engine)")
    p.add_argument("--registry", help="workspace registry (default: the spec's registry.address)")
    p.add_argument("--no-push", action="store_true", help="keep a new image in the engine only")
    p.add_argument("--force", action="store_true", help="build even if the registry has the image")
    p.add_argument("--tag", action="append", default=[], help="extra tag for the image (repeatable)")
    p.add_argument("--no-name-tag", action="store_true", help="do not tag the image NAME-VERSION")
    p.add_argument(
        "--network", choices=("default", "host", "none"), default="default", help="network of RUN steps"
    )
    p.add_argument(
        "--progress", choices=("auto", "plain", "json", "quiet"), default="auto", help="build progress"
    )
    add_tls_arguments(p)


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.build.builder import BuildOptions
    from layerkit.build.runner import RunOptions

    command = args.passthrough or []
    if not command:
        raise SpecError("no command to run: `layerkit run SPEC -- python train.py ...`")
    env = []
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"-e {item!r}: expected KEY=VALUE")
        env.append((key, value))
    build = BuildOptions(
        addr=args.addr,
        registry=args.registry,
        push=not args.no_push,
        force=args.force,
        network=args.network,
        progress=args.progress,
        tags=tuple(args.tag),
        name_tag=not args.no_name_tag,
        tls=tls_from_args(args),
    )
    opts = RunOptions(
        command=tuple(command),
        source=args.source,
        mount_at=args.mount_at,
        env=tuple(env),
        network=args.run_network,
        user=args.user,
    )
    lock = None if args.no_lock else args.lock
    result, code = api.run(
        args.spec, opts, lock, args.platform, not args.no_lock, options=build,
        on_warning=lambda w: warn(args, (w,)),
    )  # fmt: skip
    if not args.quiet:
        print(f"layerkit: {result.action} {result.image}; the command exited {code}", file=sys.stderr)
    return code
