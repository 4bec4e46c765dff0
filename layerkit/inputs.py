"""Which files a command read: the dependencies of a memoized result (layerkit.memo).

Readers call ``note(path)`` (or ``note_absent(path)`` for a probe that found nothing);
outside ``recording()`` both cost one attribute check.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

# path -> (mtime_ns, size) at the time of reading, or None for a probe that found nothing.
_current: dict[str, tuple[int, int] | None] | None = None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def note(path: Path) -> None:
    if _current is not None:
        _current[os.path.abspath(path)] = _stat(path)


def note_absent(path: Path) -> None:
    if _current is not None:
        _current.setdefault(os.path.abspath(path), None)


@contextlib.contextmanager
def recording() -> Iterator[dict[str, tuple[int, int] | None]]:
    global _current
    previous, _current = _current, {}
    try:
        yield _current
    finally:
        _current = previous
