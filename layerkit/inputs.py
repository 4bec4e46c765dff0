"""Which files a command read: `layerkit make` learns a render's prerequisites this way.

Readers call ``note(path)`` after reading a file; outside ``recording()`` a call costs one
attribute check.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


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
