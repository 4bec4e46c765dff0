"""Whole-process memo of the pure commands: `render` (to stdout), `hash`, `show`, `validate`,
and of a `build` that found its image in the workspace registry.

A make rule or pre-commit hook runs these over and over on unchanged inputs, and most of
a cold run is interpreter start-up plus importing pydantic, ruamel and jinja2. An entry
is keyed by (layerkit's own files, working directory, arguments) and holds the files the
command read (by sha256; a probe that found nothing must still find nothing), its exit
code and its output. A hit re-checks every dependency and replays the output without
importing any of that. Only exit code 0 is stored; LAYERKIT_NO_CACHE=1 turns it off.

A found build also depends on the registry: its entry holds the manifest digest, and a
replay first asks the registry (one HEAD, with the credentials of that moment) that the
tag still names that digest. So `make` or CI re-running an unchanged build costs a
fraction of a second, and anything else (a miss, a moved tag, a registry down) runs
the real build path.

Imports stay minimal here: this module runs before the CLI on every invocation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from layerkit.inputs import Recording

SCHEMA = 2
COMMANDS = frozenset({"render", "hash", "show", "validate", "build"})


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def applies(argv: list[str]) -> bool:
    """Pure commands only: `render -o DIR` writes files, so it always runs."""
    command = _command(argv)
    if os.environ.get("LAYERKIT_NO_CACHE") or command not in COMMANDS:
        return False
    if command == "build" and "--force" in argv:
        return False
    # Anything that could spell -o/--output (e.g. `-octx`) or help: always run for real.
    return not any(a.startswith(("-o", "--o", "-h", "--h")) for a in argv)


def _cache_root() -> Path:
    # Same rule as layerkit.resources.cache_dir, without importing it (start-up cost).
    return Path(os.environ.get("LAYERKIT_CACHE", Path.home() / ".cache" / "layerkit")) / "memo"


@functools.cache  # once per process: a miss keys its lookup and its store alike
def _fingerprint() -> list[tuple[str, int, int]]:
    """layerkit's code and data by (path, mtime, size): an edited checkout or upgrade misses."""
    pkg = Path(__file__).resolve().parent
    # A wheel ships templates/ and base-images/ in layerkit/_data; a checkout has them beside.
    roots = [pkg] if (pkg / "_data").is_dir() else [pkg, pkg.parent / "templates", pkg.parent / "base-images"]
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if not name.endswith(".pyc"):
                    st = os.stat(os.path.join(dirpath, name))
                    out.append((os.path.join(dirpath, name), st.st_mtime_ns, st.st_size))
    return out


# What else decides a build's outcome or its errors (daemon address, TLS options, where
# docker credentials live): a replay must not answer for another configuration.
_BUILD_ENV = ("BUILDKIT_HOST", "DOCKER_HOST", "DOCKER_CONFIG")


def _context(argv: list[str]) -> list[object]:
    """The run an entry answers for, as JSON gives it back (lists), so it compares directly."""
    env: list[list[str]] = []
    if _command(argv) == "build":
        env = sorted(
            [k, v] for k, v in os.environ.items() if k in _BUILD_ENV or k.startswith("LAYERKIT_TLS_")
        )
    return [os.getcwd(), list(argv), env]


def _key(argv: list[str]) -> str:
    doc = [SCHEMA, sys.version_info[:2], _fingerprint(), _context(argv)]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def _private(path: Path) -> bool:
    """Ours and writable by us alone: a build entry names registries to send credentials to."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def lookup(argv: list[str], started: float | None = None) -> tuple[int, str, str] | None:
    """(exit code, stdout, stderr) of an earlier run whose inputs are unchanged, else None."""
    root = _cache_root()
    path = root / f"{_key(argv)}.json"
    if not (_private(root) and _private(path)):
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("schema") != SCHEMA:
        return None
    if entry.get("context") != _context(argv):
        return None  # not the run this key names (a damaged or misplaced entry)
    for path, digest in entry["deps"]:
        if _digest(path) != digest:
            return None
    if entry.get("manifests") and not _manifests_unchanged(entry["manifests"]):
        return None
    if entry.get("result") is not None:
        from layerkit.build.summary import render

        result = dict(entry["result"])
        result["seconds"] = round(time.monotonic() - (started or time.monotonic()), 3)
        out, summary = render(result, bool(entry["json"]))
        return int(entry["code"]), out, str(entry["stderr"]) + summary
    return int(entry["code"]), str(entry["stdout"]), str(entry["stderr"])


def _manifests_unchanged(manifests: list[list[str | None]]) -> bool:
    """Each recorded tag still names its digest; any doubt (registry down, auth) is a miss."""
    from layerkit.build.registry import Credentials, ImageRef, RegistryClient, resolve_credentials
    from layerkit.errors import LayerkitError

    for ref, digest, user_env, pass_env in manifests:

        def creds(host: str, u: str | None = user_env, p: str | None = pass_env) -> Credentials | None:
            return resolve_credentials(host, username_env=u, password_env=p)

        try:
            info = RegistryClient(creds, timeout=5.0).head_manifest(ImageRef.parse(str(ref)))
        except (LayerkitError, OSError, ValueError):
            return False
        if info is None or info.digest != digest:
            return False
    return True


class _Tee:
    """A text stream that also keeps what was written (stdout/stderr during a recorded run)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def run_recorded(argv: list[str], main: Callable[[list[str]], int]) -> int:
    """Run ``main(argv)`` noting the files it reads; store the result when it succeeds."""
    from layerkit import inputs

    out, err = _Tee(sys.stdout), _Tee(sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        with inputs.recording() as rec:
            code = main(argv)
    finally:
        sys.stdout, sys.stderr = out.stream, err.stream
    if code == 0:
        _store(argv, rec, code, "".join(out.parts), "".join(err.parts))
    return code


def _store(argv: list[str], rec: Recording, code: int, out: str, err: str) -> None:
    doc: dict[str, object] = {
        "schema": SCHEMA,
        "context": _context(argv),
        "code": code,
        "stdout": out,
        "stderr": err,
    }
    if _command(argv) == "build":
        # Only a workspace hit is stored, as its result (timings are fresh on replay).
        from layerkit.build.summary import render

        if rec.result is None or not rec.manifests:
            return
        stdout, summary = render(rec.result, rec.json_output)
        if out != stdout or not err.endswith(summary):
            return
        doc.update(stdout="", stderr=err[: len(err) - len(summary)], result=rec.result, json=rec.json_output)
        doc["manifests"] = [[m.ref, m.digest, m.username_env, m.password_env] for m in rec.manifests]
    deps = []
    for path, seen in sorted(rec.files.items()):
        digest = _digest(path)
        try:
            st = os.stat(path)
            now: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            now = None
        if now != seen:
            return  # changed while we read it: this result may mix old and new
        deps.append((path, digest))
    doc["deps"] = deps
    import tempfile

    root = _cache_root()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".tmp")  # 0600, a unique name
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, sort_keys=True))
        os.replace(tmp, root / f"{_key(argv)}.json")
    except OSError:
        pass  # a read-only cache only costs speed


def entry() -> None:
    """Console entry point: replay a memoized result, or run the CLI (recording when pure)."""
    started = time.monotonic()
    argv = sys.argv[1:]
    if applies(argv):
        try:
            hit = lookup(argv, started)
        except KeyboardInterrupt:  # e.g. during a build entry's registry check
            sys.stderr.write("layerkit: interrupted\n")
            sys.exit(130)
        if hit is not None:
            code, out, err = hit
            sys.stderr.write(err)
            try:
                sys.stdout.write(out)
                sys.stdout.flush()
            except BrokenPipeError:
                # stdout closed early (`| head`), as layerkit.cli.main handles it.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(code)
        from layerkit.cli import main

        sys.exit(run_recorded(argv, main))
    from layerkit.cli import main

    sys.exit(main(argv))
