"""Command line: parser assembly, the one dispatch, and the one place errors become exit codes.

stdout carries machine output only (Dockerfile, hash, JSON); messages go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from layerkit import __version__
from layerkit.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    LayerkitError,
    Position,
    SpecError,
    error_line,
    one_line,
)

EXIT_CODES_HELP = """exit codes:
  0    ok
  1    a check failed (e.g. a stale lock)
  2    bad input (spec, layer, lock or arguments); the message names file:line:col
  3    environment failure (solver, daemon, registry, network, file system)
  130  interrupted
"""


# Every subcommand is a module of its own (layerkit/commands/NAME.py) with configure(parser)
# and run(args) -> exit code. Its one-line help is here so that only the chosen command's
# module is imported (and its options built): start-up pays for one command, not thirteen.
COMMANDS: dict[str, str] = {
    "validate": "check specs; warnings on stderr",
    "render": "write or print the Dockerfile",
    "hash": "print the environment hash",
    "build": "build the image through BuildKit and push it (skipped when the registry has it)",
    "lock": "resolve the spec with conda-lock into <stem>.conda-lock.yml",
    "show": "print the merged spec with the origin of each value",
    "flavours": "list the curated base flavours (--layers: the built-in layers)",
    "plan": "show what `build` would do (hash, image, registry state, cache, steps); --json for tools",
    "outdated": "compare the base image digests recorded in locks with the registries' (exit 1 if behind)",
    "run": "build or reuse the image and run a command in it with the source directory mounted",
    "verify": "build the image again with no cache and compare its digest with the pushed one (exit 1 if not)",
    "check": "check that specs are valid, locks fresh and rendered contexts current (exit 1 if stale)",
    "env": "register environment versions in the registry; list, show and diff them",
    "make": "print a GNU Makefile fragment: spec+layers -> lock -> context -> image stamp, per environment",
    "deploy": "write Kubernetes manifests for the spec's serve: section; `deploy plan`: replicas for a load; `deploy keys`: a keys Secret",
    "serve": "serve the spec's model on the local engine, with keys; --stop, --logs, `serve keys`, `serve regen-key`",
}


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands configured on first use: the chosen command's module is imported when
    argparse reaches its name, before its options are parsed (and before its --help)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        name = values[0] if isinstance(values, list) and values else None
        c = self._name_parser_map.get(name) if isinstance(name, str) else None
        if c is not None and c.get_default("command_run") is None:
            mod = importlib.import_module(f"layerkit.commands.{name}")
            mod.configure(c)
            c.set_defaults(command_run=mod.run)
        super().__call__(parser, namespace, values, option_string)


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
    p.register("action", "parsers", _Commands)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_ in COMMANDS.items():
        sub.add_parser(
            name, help=help_, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
        )
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
            # A RUN's output may hold ESC or BEL: escaped per line, so no line moves the
            # cursor, retitles or rings the terminal, and the lines stay lines.
            lines = logs.removesuffix("\n").split("\n")
            sys.stderr.write("".join(one_line(line.removesuffix("\r")) + "\n" for line in lines))
        return _error(exc.location, exc.message, exc.exit_code)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        # The file system refused a write (an unwritable or immutable folder, a path under a
        # file, /proc): the environment's fault, one line naming the path. Reads of inputs
        # go through layerkit.inputs and are SpecErrors already.
        reason = exc.strerror or type(exc).__name__
        if exc.filename is None:  # a socket or pipe, not a path
            return _error(None, reason, EXIT_ENVIRONMENT)
        return _error(Position(os.fsdecode(exc.filename)), f"file system: {reason}", EXIT_ENVIRONMENT)
    except KeyboardInterrupt:
        print("layerkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _error(where: Position | None, message: str, code: int) -> int:
    print(error_line(where, message), file=sys.stderr)
    return code


def _broken_pipe() -> int:
    # stdout closed early (e.g. `| head`): not an error of ours.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def entry() -> None:
    """Console entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
