"""FileSync's DiffCopy, sender side (fsutil's protocol), and .dockerignore pattern matching.

Protocol: we send one PACKET_STAT per entry in walk order (lexical per directory, a
directory before its contents), then an empty STAT. BuildKit answers PACKET_REQ with
the index (ID) of a regular file's STAT; we send its bytes as PACKET_DATA chunks and an
empty DATA as end of file. BuildKit's PACKET_FIN ends the exchange; we answer FIN.
"""

from __future__ import annotations

import os
import queue
import re
import stat as st
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from layerkit.build._proto import fsutil_types_pb2 as ft

# Go os.FileMode type bits (fsutil sends Go modes, not st_mode).
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
CHUNK = 256 * 1024  # well below dockerd's 4 MiB message cap


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's fileutils pattern syntax: * ? [..] within a segment, ** across segments."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 1
                if pattern.startswith("/", i + 1):
                    i += 1
                    out += "(?:.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out += f"[{'^' + body[1:] if body.startswith('!') else body}]"
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool


class PatternMatcher:
    """.dockerignore semantics: last matching rule wins; a rule matching a directory
    matches everything below it; ``!`` re-includes."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.rules: list[_Rule] = []
        for raw in patterns:
            p = raw.strip()
            if not p or p.startswith("#"):
                continue
            negate = p.startswith("!")
            p = os.path.normpath(p[1:].strip() if negate else p).lstrip("/")
            if p in (".", ""):
                continue
            self.rules.append(_Rule(_pattern_regex(p), negate))

    @property
    def has_negations(self) -> bool:
        return any(r.negate for r in self.rules)

    def matches(self, path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        matched = False
        for rule in self.rules:
            if any(rule.regex.match(p) for p in prefixes):
                matched = not rule.negate
        return matched


def _go_mode(mode: int) -> int:
    perm = st.S_IMODE(mode) & 0o777
    if st.S_ISDIR(mode):
        return GO_DIR | perm
    if st.S_ISLNK(mode):
        return GO_SYMLINK | perm
    return perm


def _included(path: str, includes: Sequence[str]) -> bool:
    for inc in includes:
        inc = inc.strip("/")
        if path == inc or path.startswith(inc + "/") or PatternMatcher([inc]).matches(path):
            return True
    return False


def walk(
    root: Path, includes: Sequence[str] = (), excludes: Sequence[str] = ()
) -> list[tuple[str, os.stat_result]]:
    """Entries to send, in fsutil walk order, with their lstat results."""
    exclude = PatternMatcher(excludes)
    chosen: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        keep_dirs = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if exclude.matches(rel) and not exclude.has_negations:
                continue  # nothing below can come back
            keep_dirs.append(name)
            info = os.lstat(os.path.join(dirpath, name))
            if st.S_ISLNK(info.st_mode):
                keep_dirs.pop()  # a symlink to a dir is sent as a link, not walked
                filenames.append(name)
                continue
            if not exclude.matches(rel) and (not includes or _included(rel, includes)):
                chosen[rel] = info
        dirnames[:] = keep_dirs
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if exclude.matches(rel) or (includes and not _included(rel, includes)):
                continue
            chosen[rel] = os.lstat(os.path.join(dirpath, name))
    # Parents of chosen entries must precede them, even where a pattern dropped the parent.
    for rel in list(chosen):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in chosen:
                chosen[parent] = os.lstat(root / parent)
    return sorted(chosen.items(), key=lambda kv: kv[0].split("/"))


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
