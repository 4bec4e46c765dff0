"""The build context of a user's base Dockerfile: the folder its COPY and ADD read.

A `base.dockerfile_file` reads its own folder, or `base.context` (an Azure ML v2 `build.path`).
Every file in it that .dockerignore keeps is listed with its mode and sha256: the list enters
the environment hash, and the files are sent to BuildKit under `user-context/`, where the
inlined Dockerfile's COPY/ADD sources are pointed (render/userfile.py). A file that changes
between render and build is refused: the hash would not name what was built.
"""

from __future__ import annotations

import hashlib
import os
import stat as st
from dataclasses import dataclass
from pathlib import Path

from layerkit import inputs
from layerkit.errors import Position, SpecError

PREFIX = "user-context"  # where the user's files sit in the context layerkit sends
MAX_BYTES = 512 * 1024 * 1024  # a context this large belongs in an image of its own
GIT_SYNTAX = frozenset({".gitignore", ".amlignore"})  # Azure ML reads .amlignore as git does


class Budget:
    """One running total of bytes read against MAX_BYTES, shared by the collections that go
    into one sent context (the inference stage's source tree and every model)."""

    def __init__(self, what: str, root: Path) -> None:
        self.total = 0
        self.what = what
        self.root = root

    def add(self, size: int, loc: Position | None) -> None:
        self.total += size
        if self.total > MAX_BYTES:
            raise SpecError(_too_large(self.what, self.root), loc)


@dataclass(frozen=True)
class ContextFile:
    path: str  # relative to the context folder, "/"-separated
    mode: int  # permission bits as on disk: COPY keeps them (a 0600 file stays 0600)
    sha256: str


@dataclass(frozen=True)
class UserContext:
    root: Path
    files: tuple[ContextFile, ...]
    prefix: str = PREFIX  # where the files sit in the sent context

    def hash_part(self) -> list[list[object]]:
        return [[f.path, oct(f.mode), f.sha256] for f in self.files]

    def read(self) -> tuple[dict[str, bytes], dict[str, int]]:
        """(name in the sent context -> bytes, name -> mode), each checked against the render."""
        data: dict[str, bytes] = {}
        modes: dict[str, int] = {}
        for f in self.files:
            path = self.root / f.path
            body = read_file(path)
            if hashlib.sha256(body).hexdigest() != f.sha256:
                raise SpecError(f"{path} changed after the environment was rendered; render and build again")
            data[f"{self.prefix}/{f.path}"] = body
            modes[f"{self.prefix}/{f.path}"] = f.mode
        return data, modes


def collect(
    root: Path,
    loc: Position,
    *,
    ignore_files: tuple[str, ...] = (".dockerignore",),
    prefix: str = PREFIX,
    what: str = "the base Dockerfile's build context",
    skip: frozenset[str] = frozenset(),
    budget: Budget | None = None,
) -> UserContext:
    """List the files of `root` that its ignore file keeps (symlinks and specials refused):
    the first of `ignore_files` present, .gitignore and .amlignore read with git's syntax, the
    others with .dockerignore's. `skip`: paths (and what is below them) never listed, whatever
    the ignore file re-includes. `budget`: a total shared with other collections."""
    from layerkit.ignorefiles import gitignore_patterns, walk

    if not root.is_dir():
        raise SpecError(f"{what} {root} is not a folder", loc)
    patterns: list[str] = []
    for name in ignore_files:
        ignore = root / name
        if ignore.is_file():
            patterns = inputs.read_bytes(ignore, name, loc).decode("utf-8", "replace").splitlines()
            if name in GIT_SYNTAX:
                patterns = gitignore_patterns(patterns)
            break
    files: list[ContextFile] = []
    budget = budget or Budget(what, root)
    for rel, info in walk(root, excludes=patterns):
        if st.S_ISDIR(info.st_mode) or _skipped(rel, skip):
            continue
        path = root / rel
        if not st.S_ISREG(info.st_mode):
            raise SpecError(
                f"{path} in {what} is not a regular file (a symlink or device); copy the file "
                "itself, or list it in .dockerignore",
                loc,
            )
        budget.add(info.st_size, loc)
        body = read_file(path, loc)
        budget.add(len(body) - info.st_size, loc)  # what was read, had the file changed since lstat
        digest = hashlib.sha256(body).hexdigest()
        mode = st.S_IMODE(info.st_mode) & 0o777
        files.append(ContextFile(rel, mode, digest))
    return UserContext(root, tuple(files), prefix)


def _skipped(rel: str, skip: frozenset[str]) -> bool:
    parts = rel.split("/")
    return any("/".join(parts[: i + 1]) in skip for i in range(len(parts)))


def read_file(path: Path, loc: Position | None = None) -> bytes:
    """Through the one reader: a file swapped for a FIFO or a device after walk's lstat is
    refused, not read forever. The cap is the whole context's: one model file may be most of it."""
    hint = "; copy the file itself, or list it in .dockerignore"
    return inputs.read_bytes(path, "build context file", loc, max_bytes=MAX_BYTES, hint=hint)


def _too_large(what: str, root: Path) -> str:
    return (
        f"{what} {root} holds more than {MAX_BYTES >> 20} MiB; list what the Dockerfile "
        "does not read in .dockerignore"
    )


def prefixed(source: str) -> str:
    """A COPY/ADD source as it reads the sent context: under PREFIX, never above it."""
    clean = os.path.normpath("/" + source).lstrip("/")
    trailing = "/" if source.endswith("/") and clean else ""
    return f"{PREFIX}/{clean}{trailing}" if clean not in ("", ".") else f"{PREFIX}/"
