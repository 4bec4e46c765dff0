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
            try:
                body = path.read_bytes()
            except OSError as exc:
                raise SpecError(f"cannot read build context file {path}: {exc.strerror}") from None
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
) -> UserContext:
    """List the files of `root` that its ignore file keeps (symlinks and specials refused):
    the first of `ignore_files` present, read with .dockerignore's syntax."""
    from layerkit.ignorefiles import walk

    if not root.is_dir():
        raise SpecError(f"{what} {root} is not a folder", loc)
    patterns: list[str] = []
    for name in ignore_files:
        ignore = root / name
        if ignore.is_file():
            patterns = inputs.read_bytes(ignore, name, loc).decode("utf-8", "replace").splitlines()
            break
    files: list[ContextFile] = []
    total = 0
    for rel, info in walk(root, excludes=patterns):
        if st.S_ISDIR(info.st_mode):
            continue
        path = root / rel
        if not st.S_ISREG(info.st_mode):
            raise SpecError(
                f"{path} in {what} is not a regular file (a symlink or device); copy the file "
                "itself, or list it in .dockerignore",
                loc,
            )
        total += info.st_size
        if total > MAX_BYTES:
            raise SpecError(
                f"{what} {root} holds more than {MAX_BYTES >> 20} MiB; list what the Dockerfile "
                "does not read in .dockerignore",
                loc,
            )
        inputs.note(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        mode = st.S_IMODE(info.st_mode) & 0o777
        files.append(ContextFile(rel, mode, digest))
    return UserContext(root, tuple(files), prefix)


def prefixed(source: str) -> str:
    """A COPY/ADD source as it reads the sent context: under PREFIX, never above it."""
    clean = os.path.normpath("/" + source).lstrip("/")
    trailing = "/" if source.endswith("/") and clean else ""
    return f"{PREFIX}/{clean}{trailing}" if clean not in ("", ".") else f"{PREFIX}/"
