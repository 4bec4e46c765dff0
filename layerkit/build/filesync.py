"""FileSync's DiffCopy, sender side (fsutil's protocol), and .dockerignore pattern matching.

Protocol: we send one PACKET_STAT per entry in walk order (lexical per directory, a
directory before its contents), then an empty STAT. BuildKit answers PACKET_REQ with
the index (ID) of a regular file's STAT; we send its bytes as PACKET_DATA chunks and an
empty DATA as end of file. BuildKit's PACKET_FIN ends the exchange; we answer FIN.
"""

from __future__ import annotations

import os
import queue
import stat as st
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from layerkit.build._proto import fsutil_types_pb2 as ft
from layerkit.ignorefiles import walk

# Go os.FileMode type bits (fsutil sends Go modes, not st_mode).
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
CHUNK = 256 * 1024  # well below dockerd's 4 MiB message cap


def _go_mode(mode: int) -> int:
    perm = st.S_IMODE(mode) & 0o777
    if st.S_ISDIR(mode):
        return GO_DIR | perm
    if st.S_ISLNK(mode):
        return GO_SYMLINK | perm
    return perm


def to_stat(rel: str, info: os.stat_result, root: Path) -> ft.Stat:
    s = ft.Stat(path=rel, mode=_go_mode(info.st_mode), uid=0, gid=0, modTime=info.st_mtime_ns)
    if st.S_ISREG(info.st_mode):
        s.size = info.st_size
    elif st.S_ISLNK(info.st_mode):
        s.linkname = os.readlink(root / rel)
    return s


def diff_copy(
    root: Path, requests: Iterator[ft.Packet], includes: Sequence[str], excludes: Sequence[str]
) -> Iterator[ft.Packet]:
    """The DiffCopy handler: yields our packets while a thread reads BuildKit's."""
    entries = walk(root, includes, excludes)
    files = {i: rel for i, (rel, info) in enumerate(entries) if st.S_ISREG(info.st_mode)}
    out: queue.Queue[ft.Packet | None] = queue.Queue(maxsize=64)

    def reader() -> None:
        try:
            for pkt in requests:
                if pkt.type == ft.Packet.PACKET_REQ:
                    rel = files.get(pkt.ID)
                    if rel is not None:
                        with open(root / rel, "rb") as fh:
                            while block := fh.read(CHUNK):
                                out.put(ft.Packet(type=ft.Packet.PACKET_DATA, ID=pkt.ID, data=block))
                    out.put(ft.Packet(type=ft.Packet.PACKET_DATA, ID=pkt.ID))
                elif pkt.type == ft.Packet.PACKET_FIN:
                    out.put(ft.Packet(type=ft.Packet.PACKET_FIN))
                    break
                elif pkt.type == ft.Packet.PACKET_ERR:
                    break
        except Exception:
            pass
        finally:
            out.put(None)

    for rel, info in entries:
        yield ft.Packet(type=ft.Packet.PACKET_STAT, stat=to_stat(rel, info, root))
    yield ft.Packet(type=ft.Packet.PACKET_STAT)
    threading.Thread(target=reader, name="filesync-reader", daemon=True).start()
    while (pkt := out.get()) is not None:
        yield pkt
