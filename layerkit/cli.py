"""Command line: a thin layer over layerkit.api. The one place errors become exit codes.

stdout carries machine output only (Dockerfile, hash, JSON); messages go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path

from layerkit import __version__
from layerkit.commands import add_build_arguments, build_options
from layerkit.commands import out as _out
from layerkit.commands import warn as _warn
from layerkit.errors import EXIT_INTERRUPTED, EXIT_OK, CheckFailed, LayerkitError, SpecError

EXIT_CODES_HELP = """exit codes:
  0    ok
  1    a check failed (e.g. a stale lock)
  2    bad input (spec, layer, lock or arguments); the message names file:line:col
  3    environment failure (solver, daemon, registry, network)
  130  interrupted
"""


# Subcommands kept in modules of their own (layerkit/commands/NAME.py): each has HELP,
# configure(parser) and run(args) -> exit code, and imports its heavy parts inside run().
MODULE_COMMANDS: tuple[str, ...] = ("plan", "outdated", "run", "check", "env", "make")


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

    def spec_cmd(name: str, help_: str, many: bool = False) -> argparse.ArgumentParser:
        c = sub.add_parser(
            name, help=help_, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        c.add_argument(
            "spec",
            type=Path,
            nargs="+" if many else None,
            help="layerkit.yaml, environment.yml or hosted JSON",
        )
        return c

    c = spec_cmd("validate", "check specs; warnings on stderr", many=True)
    c.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    for name, help_ in (("render", "write or print the Dockerfile"), ("hash", "print the environment hash")):
        c = spec_cmd(name, help_)
        c.add_argument(
            "--lock",
            type=Path,
            help="conda-lock.yml or explicit lock (default: <stem>.conda-lock.yml beside the spec)",
        )
        c.add_argument("--no-lock", action="store_true", help="ignore the default lockfile")
        c.add_argument("--platform", help="target platform (default: the spec's first)")
        c.add_argument("--json", action="store_true", help="JSON on stdout")
        if name == "render":
            c.add_argument(
                "-o", "--output", type=Path, help="context directory to write (default: print the Dockerfile)"
            )
    c = spec_cmd("build", "build the image through BuildKit and push it (skipped when the registry has it)")
    add_build_arguments(c)
    c.add_argument("--json", action="store_true", help="JSON result on stdout")
    c = spec_cmd("lock", "resolve the spec with conda-lock into <stem>.conda-lock.yml")
    c.add_argument(
        "--lockfile", type=Path, help="lockfile path (default: <stem>.conda-lock.yml beside the spec)"
    )
    c.add_argument(
        "--check", action="store_true", help="exit 0 if the lock is fresh, 1 if stale; never solves"
    )
    c.add_argument("--update", nargs="+", metavar="NAME", help="update only these packages")
    c.add_argument(
        "--no-pin-base",
        action="store_true",
        help="do not record the base images' digests (default: asked from their registries)",
    )
    c.add_argument(
        "--conda", help="conda/mamba/micromamba executable (default: $LAYERKIT_CONDA, PATH, embedded solver)"
    )
    c.add_argument("--json", action="store_true")
    c = spec_cmd("show", "print the merged spec with the origin of each value")
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("flavours", help="list the curated base flavours (--layers: the built-in layers)")
    c.add_argument(
        "--layers", action="store_true", help="list the built-in layers (extends: [layerkit:NAME])"
    )
    c.add_argument("--json", action="store_true")
    for name in MODULE_COMMANDS:
        mod = importlib.import_module(f"layerkit.commands.{name.replace('-', '_')}")
        c = sub.add_parser(
            name, help=mod.HELP, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        mod.configure(c)
        c.set_defaults(module_run=mod.run)
    return p


def _run(args: argparse.Namespace) -> int:
    from layerkit import api

    module_run = getattr(args, "module_run", None)
    if module_run is not None:
        return int(module_run(args))
    if args.command == "validate":
        return _validate(args)
    if args.command == "show":
        from layerkit.spec.show import as_json, as_yaml

        # Checked as `validate` checks it: a spec validate refuses is not shown (exit 2).
        checked = api.check_spec(args.spec)
        _warn(args, checked.warnings)
        resolved = checked.resolved
        _out(as_json(resolved) if args.json else as_yaml(resolved))
        return EXIT_OK
    if args.command == "flavours":
        return _flavours(args)
    if args.command == "lock":
        return _lock(args)
    if args.command == "build":
        return _build(args)
    lock = None if args.no_lock else args.lock
    auto = not args.no_lock
    if args.command == "hash":
        h = api.hash_spec(args.spec, lock, args.platform, auto)
        if args.json:
            doc = {
                "hash": h.hash,
                "schema": 1,
                "stages": h.stages,
                "parts": h.parts,
                "part_digests": h.part_digests(),
            }
            _out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        else:
            _out(h.hash + "\n")
        return EXIT_OK
    rendered = api.render(args.spec, lock, args.platform, auto)
    _warn(args, rendered.warnings)
    if rendered.plan.env_install and not rendered.plan.env_install.locked and not args.quiet:
        print(
            f"{args.spec}: warning: no lock found; the env stage installs the unlocked spec (run `layerkit lock`)",
            file=sys.stderr,
        )
    if args.output:
        written = api.write_context(rendered, args.output)
        if args.json:
            _out(
                json.dumps({"hash": rendered.hash.hash, "files": [str(p) for p in written]}, indent=2) + "\n"
            )
        else:
            print(f"wrote {len(written)} files to {args.output}", file=sys.stderr)
    elif args.json:
        _out(
            json.dumps({"hash": rendered.hash.hash, "files": rendered.files}, indent=2, sort_keys=True) + "\n"
        )
    else:
        _out(rendered.dockerfile)
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    """Every spec is checked: each bad one is reported (one line), then exit 2."""
    from layerkit import api

    report: list[dict[str, object]] = []
    for spec in args.spec:
        try:
            checked = api.check_spec(spec)
        except SpecError as exc:
            line = f"{exc.location or 'layerkit'}: error: {exc.message}"
            print(line, file=sys.stderr)
            report.append({"spec": str(spec), "ok": False, "error": line})
            continue
        _warn(args, checked.warnings)
        report.append({"spec": str(spec), "ok": True, "warnings": list(checked.warnings)})
    if args.json:
        _out(json.dumps(report, indent=2) + "\n")
    return EXIT_OK if all(r["ok"] for r in report) else SpecError.exit_code


def _lock(args: argparse.Namespace) -> int:
    from layerkit import api, pipeline

    # A fresh lock proves its specs went through the solver's parser: --check loads no solver.
    checked = api.check_spec(args.spec, solver_grammar=not args.check)
    lockfile = args.lockfile or api.default_lock_path(args.spec)
    if args.check:
        try:
            spec_hash = pipeline.check_lock(checked, lockfile)
        except CheckFailed:
            api.check_grammar(checked)  # a bad spec is bad input (2), not a stale lock (1)
            raise
        if args.json:
            _out(json.dumps({"lockfile": str(lockfile), "fresh": True, "spec_hash": spec_hash}) + "\n")
        return EXIT_OK
    _warn(args, checked.warnings)
    lk, explicit = api.lock(
        checked,
        lockfile,
        update=args.update,
        solver=args.conda,
        pin_base=not args.no_pin_base,
        on_warning=lambda w: _warn(args, (w,)),
    )
    path = Path(lk.source)
    if args.json:
        counts = {p: len(lk.for_platform(p, "conda")) + len(lk.for_platform(p, "pip")) for p in lk.platforms}
        doc = {
            "lockfile": str(path),
            "spec_hash": lk.spec_hash,
            "packages": counts,
            "explicit": [str(e) for e in explicit],
            "base_digests": dict(lk.base_digests),
        }
        _out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        print(
            f"locked {len(lk.packages)} packages for {', '.join(lk.platforms)} into {path}", file=sys.stderr
        )
        _out(f"{path}\n")
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.build.summary import render as render_summary

    opts = build_options(args)
    lock = None if args.no_lock else args.lock
    result = api.build(
        args.spec, lock, args.platform, not args.no_lock, options=opts, on_warning=lambda w: _warn(args, (w,))
    )
    doc = result.to_json()
    stdout, summary = render_summary(doc, args.json)
    sys.stderr.write(summary)
    _out(stdout)
    return EXIT_OK


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`layerkit run SPEC [options] -- CMD...`: what follows the first `--` is the command,
    kept away from argparse (which would read its options as ours)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "run" and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def _flavours(args: argparse.Namespace) -> int:
    from layerkit.spec.catalog import load_catalog
    from layerkit.spec.merge import builtin_layers

    if args.layers:
        layers = builtin_layers()
        if args.json:
            _out(json.dumps([dataclasses.asdict(x) for x in layers], indent=2) + "\n")
        else:
            _out("".join(f"{x.extends:26} {x.description}\n" for x in layers))
        return EXIT_OK
    images = load_catalog().images
    if args.json:
        _out(json.dumps([i.model_dump(mode="json", exclude_none=True) for i in images], indent=2) + "\n")
    else:
        _out("".join(f"{i.id:48} {i.description}\n" for i in images))
        print("built-in layers (extends: [layerkit:NAME]): layerkit flavours --layers", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        head, passthrough = _split_passthrough(list(sys.argv[1:] if argv is None else argv))
        args = _parser().parse_args(head)
        args.passthrough = passthrough
        return _run(args)
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
