"""What a command depended on: the dependencies of a memoized result (layerkit.memo).

Readers call ``note(path)`` (or ``note_absent(path)`` for a probe that found nothing);
`build` notes the registry manifest it found (``note_manifest``) and its result
(``note_result``). Outside ``recording()`` each call costs one attribute check.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Manifest:
    """A registry manifest a result relies on; the variable NAMES give its credentials."""

    ref: str
    digest: str
    username_env: str | None = None
    password_env: str | None = None


@dataclass
class Recording:
    # path -> (mtime_ns, size) at the time of reading, or None for a probe that found nothing.
    files: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    manifests: list[Manifest] = field(default_factory=list)
    # A build's JSON result and whether it was printed as JSON: replayed with fresh timings.
    result: dict[str, object] | None = None
    json_output: bool = False


_current: Recording | None = None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def note(path: Path) -> None:
    if _current is not None:
        _current.files[os.path.abspath(path)] = _stat(path)


def note_absent(path: Path) -> None:
    if _current is not None:
        _current.files.setdefault(os.path.abspath(path), None)


def note_manifest(manifest: Manifest) -> None:
    if _current is not None:
        _current.manifests.append(manifest)


def note_result(result: dict[str, object], json_output: bool) -> None:
    if _current is not None:
        _current.result, _current.json_output = result, json_output


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    global _current
    previous, _current = _current, Recording()
    try:
        yield _current
    finally:
        _current = previous
