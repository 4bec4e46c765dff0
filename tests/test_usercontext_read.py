"""The user's build context is read through layerkit/inputs.py's one reader: a file swapped for
a FIFO after the walk's lstat is refused (never a read that waits for a writer or never ends),
and no file is read past the context's cap. The swap is simulated by handing collect a walk
whose lstat saw a regular file; no timing involved."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from layerkit import ignorefiles
from layerkit.errors import Position, SpecError
from layerkit.render import usercontext
from layerkit.render.usercontext import ContextFile, UserContext

LOC = Position("spec.yaml", 3, 5)


@contextmanager
def fifo(path: Path) -> Iterator[None]:
    """A FIFO whose writer sends one byte and closes once a reader opens it: a blocking read of
    it ends (so the old code failed the test instead of hanging it), a refused one never opens
    it, and the writer is released at the end by a reader of our own."""
    os.mkfifo(path)

    def writer() -> None:
        with open(path, "wb") as fh:
            fh.write(b"x")

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        yield
    finally:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        t.join()
        os.close(fd)


def seen_as_regular(monkeypatch: pytest.MonkeyPatch, name: str, like: Path) -> None:
    monkeypatch.setattr(ignorefiles, "walk", lambda root, excludes=(): [(name, os.lstat(like))])


def test_collect_refuses_a_fifo_swapped_in_after_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regular = tmp_path / "regular"
    regular.write_bytes(b"weights")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    seen_as_regular(monkeypatch, "model.bin", regular)
    with fifo(ctx / "model.bin"), pytest.raises(SpecError, match=r"model\.bin is not a regular file") as exc:
        usercontext.collect(ctx, LOC)
    assert exc.value.location == LOC


def test_collect_refuses_a_file_past_the_cap_even_when_lstat_saw_it_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"x")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "model.bin").write_bytes(b"y" * 4096)
    monkeypatch.setattr(usercontext, "MAX_BYTES", 1024)
    seen_as_regular(monkeypatch, "model.bin", small)  # it grew after the walk
    with pytest.raises(SpecError, match=r"model\.bin is larger than 1 KiB"):
        usercontext.collect(ctx, LOC)


def test_collect_lists_regular_files_with_their_sha256(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "a.txt").chmod(0o600)
    got = usercontext.collect(tmp_path, LOC)
    assert got.files == (ContextFile("a.txt", 0o600, hashlib.sha256(b"alpha").hexdigest()),)
    assert got.read() == ({"user-context/a.txt": b"alpha"}, {"user-context/a.txt": 0o600})


def test_read_refuses_a_fifo_swapped_in_after_the_render(tmp_path: Path) -> None:
    ctx = UserContext(tmp_path, (ContextFile("model.bin", 0o644, hashlib.sha256(b"x").hexdigest()),))
    with fifo(tmp_path / "model.bin"), pytest.raises(SpecError, match=r"model\.bin is not a regular file"):
        ctx.read()


def test_read_refuses_a_file_past_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.bin").write_bytes(b"y" * 4096)
    monkeypatch.setattr(usercontext, "MAX_BYTES", 1024)
    ctx = UserContext(tmp_path, (ContextFile("model.bin", 0o644, "0" * 64),))
    with pytest.raises(SpecError, match="larger than 1 KiB"):
        ctx.read()
