"""A conda-compatible command line backed by py-rattler, so conda-lock runs without conda.

conda-lock (4.x) drives a solver only through a conda/mamba/micromamba *executable*
(``--conda PATH``); layerkit ships this module as that executable (see
``layerkit.lock.shim_launcher``).  Only the subset conda-lock actually invokes is
implemented; everything else fails loudly with exit code 2.

Contract (``python -m layerkit.lock.shim ARGS`` or ``main(argv)``):

``--version``
    ``layerkit-conda-shim <ver> (py-rattler <ver>)``; conda-lock only logs it.
``info --json`` / ``config --json list pkgs_dirs``
    ``{"pkgs_dirs": [...], "platform": subdir, "virtual_pkgs": [[name, ver, build]], ...}``;
    conda-lock reads ``pkgs_dirs`` (``$CONDA_PKGS_DIRS``, comma-separated) only.
``create --dry-run --json (-p PREFIX | -n NAME) [--override-channels] -c URL... SPEC...``
    Solves SPECs for ``$CONDA_SUBDIR`` (or ``--subdir``/``--platform``; default: host) plus
    ``noarch``.  stdout: ``{"success": true, "dry_run": true, "prefix": P,
    "actions": {"FETCH": [rec...], "LINK": [link...], "PREFIX": P}}`` where each FETCH ``rec``
    is a conda repodata record (name, version, build, build_string, build_number, channel,
    subdir, fn, url, md5, sha256, size, depends, constrains, timestamp in ms, ...) and each
    LINK is ``{base_url, build_number, build_string, channel, dist_name, name, platform,
    version}``.  Every solved package appears in FETCH, so conda-lock never needs the
    package cache.
``install|update --dry-run --json -p PREFIX -c URL... SPEC...``
    conda-lock's ``--update`` path: installed records are read from ``PREFIX/conda-meta``,
    kept installed and preferred (rattler ``locked_packages``) except the packages named in
    SPECs, which move to the newest compatible build.  Output as for ``create`` but only the
    changed packages (plus ``UNLINK`` for the replaced ones).
``list --json -p PREFIX [--no-pip]``
    the ``conda-meta`` records of PREFIX as LINK-shaped dicts.

Channels: ``-c/--channel`` names (``conda-forge``, ``defaults``), ``http(s)://`` or ``file://`` URLs,
``--override-channels`` is implied (no .condarc is read).  Channel priority is conda's
default ``flexible``; ``--strict-channel-priority``, ``--no-channel-priority`` or
``$CONDA_CHANNEL_PRIORITY`` (strict/flexible/disabled) change it.

Virtual packages, lowest to highest precedence: (1) defaults for the target OS, detected
from the host when it runs that OS (``__unix``, ``__linux``, ``__glibc``, ``__osx``,
``__win``, ``__archspec``; never ``__cuda``); (2) records of *virtual-only* local
channels, i.e. ``file://`` channels whose records are all named ``__*`` (conda-lock's
fake virtual-package channel) - such channels are removed from the sources so no ``__*``
record is ever "fetched"; (3) ``$CONDA_OVERRIDE_<NAME>``: non-empty sets ``__<name>``
(for ARCHSPEC the value is the build string), empty removes it.  So ``__cuda`` exists
only when asked for.

Failures: with ``--json`` stdout carries ``{"success": false, "exception_name": ...,
"error": ..., "message": ...}`` (conda-lock prints ``message``), the message also goes to
stderr, exit code 1; unsupported usage exits 2.  Real installs (no ``--dry-run``),
``--file``, ``run`` and ``env`` are not supported: layerkit installs in its Dockerfile.

Specs are parsed leniently, as conda does (conda-lock writes ``pkg==1.0`` as ``pkg 1.0``).
The repodata cache is rattler's (``~/.cache/rattler/cache``), or ``$RATTLER_CACHE_DIR/cache``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform as host_platform
import re
import sys
from collections.abc import Sequence
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import rattler
from rattler import (
    ChannelPriority,
    GenericVirtualPackage,
    MatchSpec,
    PackageName,
    PackageRecord,
    RepoDataRecord,
)
from rattler.exceptions import InvalidMatchSpecError, SolverError
from rattler.package.build_string import BuildString

from layerkit.spec.matchspec import bind_channel

SHIM_VERSION = "0.1.0"
_SOLVE_COMMANDS = ("create", "install", "update")
_DEFAULTS = ["https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"]  # conda's "defaults"
# Target-OS virtual packages and the values conda-lock's default-virtual-packages.yaml uses;
# those fallbacks apply when the host cannot be asked (cross-platform locks).
_OS_VIRTUALS: dict[str, dict[str, str]] = {
    "linux": {"__unix": "0", "__linux": "5.10", "__glibc": "2.28"},
    "osx": {"__unix": "0", "__osx": "11.0"},
    "win": {"__win": "0"},
}
_ARCHSPEC = {"64": "x86_64", "32": "x86", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le"}
# conda enables these only on some OSes; an override for another OS must not leak in.
_OS_ONLY = {"__linux": "linux", "__glibc": "linux", "__osx": "osx", "__win": "win", "__unix": "linux osx"}
_OS_ONLY["__cuda"] = "linux win"
_PRIORITY = {"strict": ChannelPriority.Strict, "flexible": ChannelPriority.Flexible}
_PRIORITY |= {"disabled": ChannelPriority.Disabled, "true": ChannelPriority.Flexible}

VirtualPkgs = dict[str, tuple[str, str]]  # name -> (version, build string)


class ShimError(Exception):
    """An error reported the way conda reports it; exit_code 2 means unsupported usage."""

    def __init__(self, message: str, exception_name: str = "CondaError", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exception_name = exception_name
        self.exit_code = exit_code


def _usage(message: str) -> ShimError:
    return ShimError(message, "ArgumentError", exit_code=2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would sys.exit(); keep main() returning
        raise _usage(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="conda (layerkit shim)", add_help=False)
    p.add_argument("-V", "--version", action="store_true")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    for name in (*_SOLVE_COMMANDS, "list", "info", "config"):
        s = sub.add_parser(name, add_help=False)
        s.add_argument("--json", action="store_true")
        s.add_argument("-p", "--prefix")
        s.add_argument("-n", "--name")
        s.add_argument("args", nargs="*")
        if name in _SOLVE_COMMANDS:
            s.add_argument("-c", "--channel", action="append", default=[])
            s.add_argument("--dry-run", "-d", action="store_true")
            s.add_argument("--subdir", "--platform", dest="subdir")
            s.add_argument("--strict-channel-priority", action="store_true")
            s.add_argument("--no-channel-priority", action="store_true")
            s.add_argument("--file")
            for noop in ("--override-channels", "-y", "--yes", "-q", "--quiet", "--copy"):
                s.add_argument(noop, action="store_true")  # conda flags with no effect here
        if name == "list":
            s.add_argument("--no-pip", action="store_true")  # there is never a pip part
    return p


def _target_subdir(flag: str | None) -> str:
    subdir = flag or os.environ.get("CONDA_SUBDIR") or str(rattler.Platform.current())
    if subdir == "noarch" or "-" not in subdir:
        raise _usage(f"unsupported target platform {subdir!r}")
    return subdir


def _pkgs_dirs() -> list[str]:
    env = os.environ.get("CONDA_PKGS_DIRS")
    if env:
        return [d for d in env.split(",") if d]
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [str(Path(cache) / "layerkit" / "pkgs")]


def _host_value(name: str, target_os: str) -> str | None:
    """The host's own value, as conda detects it, when the host runs the target OS."""
    if target_os != {"linux": "linux", "darwin": "osx", "win32": "win"}.get(sys.platform):
        return None
    if name == "__glibc" and hasattr(os, "confstr"):
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
        return libc.split()[-1] if libc.startswith("glibc ") else None
    if name == "__linux":
        m = re.match(r"\d+(\.\d+)*", host_platform.release())
        return m.group(0) if m else None
    if name == "__osx":
        return host_platform.mac_ver()[0] or None
    return None


def _local_records(url: str, subdirs: Sequence[str]) -> list[dict[str, Any]] | None:
    """All records of a file:// channel, or None when it is not a plain local channel."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    records: list[dict[str, Any]] = []
    for subdir in subdirs:
        repodata = Path(unquote(parsed.path)) / subdir / "repodata.json"
        if not repodata.is_file():
            return None
        data = json.loads(repodata.read_text(encoding="utf-8"))
        for key in ("packages", "packages.conda"):
            records.extend((data.get(key) or {}).values())
    return records


def _virtual_packages(subdir: str, channels: Sequence[str]) -> tuple[list[str], VirtualPkgs]:
    """Split off virtual-only channels; return the real channels and the virtual packages."""
    target_os, _, arch = subdir.partition("-")
    found: VirtualPkgs = {}
    for name, fallback in _OS_VIRTUALS.get(target_os, {}).items():
        found[name] = (_host_value(name, target_os) or fallback, "0")
    if arch in _ARCHSPEC:
        found["__archspec"] = ("1", _ARCHSPEC[arch])
    real: list[str] = []
    for url in channels:
        records = _local_records(url, [subdir, "noarch"])
        # an empty local channel stays a (harmless) real one: it may just lack this subdir
        if not records or not all(str(r.get("name", "")).startswith("__") for r in records):
            real.append(url)
            continue
        for r in records:  # conda-lock's fake channel writes build_string "" for "0"
            found[r["name"]] = (str(r["version"]), str(r.get("build") or r.get("build_string") or "0"))
    for key, value in os.environ.items():
        if not key.startswith("CONDA_OVERRIDE_"):
            continue
        name = "__" + key.removeprefix("CONDA_OVERRIDE_").lower()
        if target_os not in _OS_ONLY.get(name, target_os).split():
            continue
        if not value.strip():
            found.pop(name, None)
        elif name == "__archspec":
            found[name] = ("1", value.strip())
        else:
            found[name] = (value.strip(), "0")
    return real, found


def _priority(args: argparse.Namespace) -> ChannelPriority:
    if args.strict_channel_priority:
        return ChannelPriority.Strict
    if args.no_channel_priority:
        return ChannelPriority.Disabled
    env = os.environ.get("CONDA_CHANNEL_PRIORITY", "flexible").strip().lower()
    if env not in _PRIORITY:
        raise _usage(f"CONDA_CHANNEL_PRIORITY={env!r}: expected strict, flexible or disabled")
    return _PRIORITY[env]


def _read_prefix(prefix: str | None) -> list[dict[str, Any]]:
    if not prefix:
        return []
    meta = Path(prefix) / "conda-meta"
    return [json.loads(f.read_text(encoding="utf-8")) for f in sorted(meta.glob("*.json"))]


def _to_record(entry: dict[str, Any]) -> RepoDataRecord:
    """A conda-meta entry (as conda-lock's fake prefix writes it) as a rattler record."""
    md5, sha256 = entry.get("md5"), entry.get("sha256")
    pr = PackageRecord(
        name=entry["name"],
        version=entry["version"],
        build=BuildString(entry["build"]),
        build_number=int(entry.get("build_number", 0)),
        subdir=entry.get("subdir", "noarch"),
        depends=list(entry.get("depends") or []),
        constrains=list(entry.get("constrains") or []),
        md5=bytes.fromhex(md5) if md5 else None,
        sha256=bytes.fromhex(sha256) if sha256 else None,
    )
    fn = entry.get("fn") or entry["url"].rsplit("/", 1)[-1]
    return RepoDataRecord(pr, fn, entry["url"], str(entry.get("channel", "")))


def _link_entry(rec: dict[str, Any]) -> dict[str, Any]:
    channel = str(rec.get("channel", ""))
    return {
        "base_url": channel.rstrip("/"),
        "build_number": rec.get("build_number", 0),
        "build_string": rec.get("build", ""),
        "channel": channel.rstrip("/").rsplit("/", 1)[-1],
        "dist_name": re.sub(r"\.(tar\.bz2|conda)$", "", str(rec.get("fn", ""))),
        "name": rec["name"],
        "platform": rec.get("subdir", ""),
        "version": rec["version"],
    }


def _fetch_entry(record: RepoDataRecord) -> dict[str, Any]:
    rec: dict[str, Any] = json.loads(record.to_json())
    rec["build_string"] = rec["build"]
    rec.setdefault("depends", [])
    rec.setdefault("constrains", [])
    if isinstance(rec.get("track_features"), list):  # conda records carry a string here
        rec["track_features"] = ",".join(rec["track_features"])
    return rec


async def _solve(args: argparse.Namespace, subdir: str) -> dict[str, Any]:
    if args.file:
        raise _usage("--file is not supported by the layerkit shim")
    if not args.dry_run:
        raise _usage("only --dry-run solves are supported; layerkit installs in its Dockerfile")
    urls = [u for c in args.channel for u in (_DEFAULTS if c == "defaults" else [c])]
    channels, virtual = _virtual_packages(subdir, urls)
    if not channels:
        raise ShimError("no package channels given: pass -c/--channel", "NoChannelsConfiguredError")
    installed = _read_prefix(args.prefix) if args.command != "create" else []
    # Lenient parsing, as conda does: conda-lock writes `pkg==1.0` as "pkg 1.0", which
    # rattler's strict mode rejects as ambiguous.
    # conda-lock names a spec's channel by conda's canonical name; bind it to a -c URL.
    specs = [MatchSpec(bind_channel(s, urls), strict=False) for s in args.args]
    updating = {m.name.normalized for m in specs}
    kept = [e for e in installed if e["name"] not in updating and not e["name"].startswith("__")]
    specs += [MatchSpec(e["name"]) for e in kept]  # conda keeps what is installed unless told otherwise
    vps = [GenericVirtualPackage(PackageName(n), rattler.Version(v), BuildString(b)) for n, (v, b) in virtual.items()]  # fmt: skip
    # py-rattler ignores $RATTLER_CACHE_DIR (rattler's own convention); honour it so callers
    # (tests) can isolate the repodata cache, else rattler's default ~/.cache/rattler is used.
    cache = os.environ.get("RATTLER_CACHE_DIR")
    solved = await rattler.solve(
        channels,
        specs,
        gateway=rattler.Gateway(cache_dir=Path(cache) / "cache" if cache else None),
        platforms=[rattler.Subdir(subdir), rattler.Subdir("noarch")],
        virtual_packages=vps,
        locked_packages=[_to_record(e) for e in kept],
        channel_priority=_priority(args),
    )
    fetch = sorted((_fetch_entry(r) for r in solved), key=lambda r: str(r["name"]))
    by_name = {e["name"]: e for e in installed}
    changed = [r for r in fetch if (by_name.get(r["name"]) or {}).get("url") != r["url"]]
    replaced = [by_name[r["name"]] for r in changed if r["name"] in by_name]
    actions: dict[str, Any] = {"FETCH": changed, "LINK": [_link_entry(r) for r in changed]}
    actions["PREFIX"] = args.prefix
    if replaced:
        actions["UNLINK"] = [_link_entry(r) for r in replaced]
    return {"success": True, "dry_run": True, "prefix": args.prefix, "actions": actions}


def _info(subdir: str) -> dict[str, Any]:
    _, virtual = _virtual_packages(subdir, [])
    solver = f"py-rattler {dist_version('py-rattler')}"
    return {"conda_version": SHIM_VERSION, "platform": subdir, "pkgs_dirs": _pkgs_dirs(), "solver": solver,
            "virtual_pkgs": [[n, v, b] for n, (v, b) in sorted(virtual.items())], "channels": [],
            "envs_dirs": [], "root_prefix": sys.prefix}  # fmt: skip


def _run(args: argparse.Namespace) -> Any:
    if args.command in _SOLVE_COMMANDS:
        subdir = _target_subdir(args.subdir)
        return asyncio.run(_solve(args, subdir))
    if args.command == "list":
        return [_link_entry(e) for e in sorted(_read_prefix(args.prefix), key=lambda e: str(e["name"]))]
    if args.command == "info":
        return _info(_target_subdir(None))
    if args.command == "config" and args.args[:1] == ["list"]:
        keys = args.args[1:] or ["pkgs_dirs"]
        unknown = [k for k in keys if k != "pkgs_dirs"]
        if unknown:
            raise _usage(f"config key(s) not supported: {', '.join(unknown)}")
        return {"pkgs_dirs": _pkgs_dirs()}
    raise _usage(
        f"command not supported by the layerkit conda shim: {args.command or '(none)'}; "
        "supported: --version, info, config list, list, create/install/update --dry-run"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in argv
    try:
        args = _parser().parse_args(argv)
        if args.version:
            print(f"layerkit-conda-shim {SHIM_VERSION} (py-rattler {dist_version('py-rattler')})")
            return 0
        result = _run(args)
    except ShimError as err:
        return _report(err, want_json)
    except SolverError as err:  # unsolvable specs, or a requested package exists nowhere
        text = str(err).strip()
        name = "PackagesNotFoundError" if "No candidates were found" in text else "UnsatisfiableError"
        return _report(ShimError(f"could not solve the environment:\n{text}", name), want_json)
    except InvalidMatchSpecError as err:
        return _report(ShimError(f"invalid package spec: {err}", "InvalidMatchSpec"), want_json)
    except Exception as err:  # network, IO: still report conda-style so conda-lock shows why
        return _report(ShimError(str(err) or repr(err), type(err).__name__), want_json)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _report(err: ShimError, want_json: bool) -> int:
    """conda's --json error shape on stdout (conda-lock prints its "message"), text on stderr."""
    print(f"layerkit conda shim: {err.message}", file=sys.stderr)
    if want_json:
        name = err.exception_name
        out = {"success": False, "exception_name": name, "error": f"{name}: {err.message}"}
        print(json.dumps({**out, "message": err.message}, indent=2))
    return err.exit_code


def _entry() -> None:
    code = main()
    # py-rattler's tokio runtime can abort during interpreter teardown after a solve, turning
    # a good result into a crash exit; flush and leave without running finalizers.
    with contextlib.suppress(OSError):  # a reader that went away must not change the code
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _entry()
