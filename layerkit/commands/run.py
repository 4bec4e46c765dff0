"""`layerkit run SPEC [options] -- COMMAND...`: build or reuse the image, run COMMAND in it with
the source directory mounted, stream its output and exit with its exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layerkit.commands import add_build_arguments, add_spec_argument, build_options, lock_of, warn
from layerkit.errors import SpecError


def configure(p: argparse.ArgumentParser) -> None:
    add_spec_argument(p)
    # The command itself follows `--` and is split off before parsing (layerkit.cli).
    p.usage = "layerkit run SPEC [options] -- COMMAND [ARG...]"
    p.add_argument("--source", type=Path, default=Path("."), help="directory to mount (default: .)")
    p.add_argument("--mount-at", help="where it appears in the container (default: runtime.workdir)")
    p.add_argument(
        "-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable"
    )
    p.add_argument(
        "--user",
        help="user[:group] in the container (default: yours, uid:gid, so it can write into the source; "
        "the image's own user: --user NAME, e.g. the spec's runtime.user)",
    )
    p.add_argument("--shm-size", metavar="SIZE", help="/dev/shm size, e.g. 2g (default: runtime.shm_size)")
    p.add_argument(
        "--run-network", choices=("default", "host", "none"), default="default", help="network of the command"
    )
    add_build_arguments(p, platform_default="the engine's, among the spec's platforms")


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.build.runner import RunOptions
    from layerkit.spec import values as V

    command = args.passthrough or []
    if not command:
        raise SpecError("no command to run: `layerkit run SPEC -- python train.py ...`")
    if args.shm_size is not None and not V.matches(V.SHM_SIZE, args.shm_size):
        raise SpecError(f"--shm-size {args.shm_size!r}: expected a size such as 2g or 512m")
    env = []
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"-e {item!r}: expected KEY=VALUE")
        env.append((key, value))
    build = build_options(args)
    opts = RunOptions(
        command=tuple(command),
        source=args.source,
        mount_at=args.mount_at,
        env=tuple(env),
        network=args.run_network,
        user=args.user,
        shm_size=args.shm_size,
    )
    lock, auto = lock_of(args)
    result, code = api.run(
        args.spec, opts, lock, args.platform, auto, options=build,
        on_warning=lambda w: warn(args, (w,)),
    )  # fmt: skip
    if not args.quiet:
        print(f"layerkit: {result.action} {result.image}; the command exited {code}", file=sys.stderr)
    return code
