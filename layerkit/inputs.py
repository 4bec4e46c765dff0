"""The one reader of input files (specs, layers, locks, Dockerfiles), and the record of
which files a command read: `layerkit make` learns a render's prerequisites this way.

Only regular files are read, and at most a cap of bytes: /dev/zero, a FIFO or a huge file
named as input is refused with a one-line error instead of hanging or filling memory.
Readers call ``note(path)``; outside ``recording()`` a call costs one attribute check.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from layerkit.errors import Position, SpecError

MAX_BYTES = 4 * 1024 * 1024  # specs, layers and Dockerfiles are text of kilobytes
MAX_LOCK_BYTES = 32 * 1024 * 1024  # a lock of many packages on many platforms: megabytes


@dataclass
class Recording:
    files: set[str] = field(default_factory=set)  # absolute paths


_current: Recording | None = None


def note(path: Path) -> None:
    if _current is not None:
        _current.files.add(os.path.abspath(path))


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    global _current
    previous, _current = _current, Recording()
    try:
        yield _current
    finally:
        _current = previous


def read_bytes(
    path: Path, what: str, at: Position | None = None, max_bytes: int = MAX_BYTES, hint: str = ""
) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; SpecError at `at` (the place that
    names the file) or at the file itself. O_NONBLOCK: opening a FIFO must not wait for a
    writer; it is refused by fstat before any read. `hint` ends a message: how to fix it."""
    where = at or Position(str(path))
    note(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError(f"cannot read {what} {path}: no such file{hint}", where) from None
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path}: {exc.strerror}{hint}", where) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = " (a folder)" if stat.S_ISDIR(info.st_mode) else ""
            raise SpecError(
                f"{what} {path} is not a regular file{kind}{hint or '; name a regular file'}", where
            )
        if info.st_size > max_bytes:
            raise SpecError(f"{what} {path} is larger than {max_bytes >> 10} KiB", where)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes and (block := os.read(fd, min(1 << 20, max_bytes + 1 - size))):
            chunks.append(block)
            size += len(block)
        if size > max_bytes:  # it grew since fstat
            raise SpecError(f"{what} {path} is larger than {max_bytes >> 10} KiB", where)
        return b"".join(chunks)
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path}: {exc.strerror}", where) from None
    finally:
        os.close(fd)


def decode(raw: bytes, source: str, what: str) -> str:
    """UTF-8 text without NUL bytes; the error names the line:col of the first bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x})", _at(raw, exc.start, source)
        ) from None
    nul = raw.find(b"\0")
    if nul >= 0:
        raise SpecError(f"{what} holds a NUL byte; it must be text", _at(raw, nul, source))
    return text


def read_text(
    path: Path, what: str, at: Position | None = None, max_bytes: int = MAX_BYTES, hint: str = ""
) -> str:
    return decode(read_bytes(path, what, at, max_bytes, hint), str(path), what)


def _at(raw: bytes, offset: int, source: str) -> Position:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    col = len(raw[line_start:offset].decode("utf-8", "replace")) + 1
    return Position(source, raw.count(b"\n", 0, offset) + 1, col)
