"""Command line: parser assembly, the one dispatch, and the one place errors become exit codes.

stdout carries machine output only (Dockerfile, hash, JSON); messages go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from layerkit import __version__
from layerkit.errors import EXIT_INTERRUPTED, EXIT_OK, LayerkitError, SpecError

EXIT_CODES_HELP = """exit codes:
  0    ok
  1    a check failed (e.g. a stale lock)
  2    bad input (spec, layer, lock or arguments); the message names file:line:col
  3    environment failure (solver, daemon, registry, network)
  130  interrupted
"""


# Every subcommand is a module of its own (layerkit/commands/NAME.py) with HELP,
# configure(parser) and run(args) -> exit code; it imports its heavy parts inside run().
COMMANDS: tuple[str, ...] = (
    "validate", "render", "hash", "build", "lock", "show", "flavours",
    "plan", "outdated", "run", "check", "env", "make",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    # No prefix matching (`--out` for `--output`): options mean what they spell, for scripts.
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SpecError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="layerkit",
        description="Layered YAML environment specs -> locked, content-hashed, multi-stage images.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"layerkit {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        mod = importlib.import_module(f"layerkit.commands.{name}")
        c = sub.add_parser(
            name, help=mod.HELP, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        mod.configure(c)
        c.set_defaults(command_run=mod.run)
    return p


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`layerkit run SPEC [options] -- CMD...`: what follows the first `--` is the command,
    kept away from argparse (which would read its options as ours)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "run" and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def main(argv: list[str] | None = None) -> int:
    try:
        head, passthrough = _split_passthrough(list(sys.argv[1:] if argv is None else argv))
        args = _parser().parse_args(head)
        args.passthrough = passthrough
        return int(args.command_run(args))
    except LayerkitError as exc:
        logs = getattr(exc, "logs", "")
        if logs:
            sys.stderr.write(logs if logs.endswith("\n") else logs + "\n")
        where = f"{exc.location}: " if exc.location else "layerkit: "
        print(f"{where}error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("layerkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def entry() -> None:
    """Console entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
