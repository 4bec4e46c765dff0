"""Where two images that should be the same differ: the first differing layer (by its
uncompressed digest, named by the Dockerfile instruction that made it) and the first differing
file in it, from the two layers' tar listings. Pure, apart from reading the tar streams handed
in: a layer is read once, front to back, and only its listing (a few fields and a content
digest per file) is kept, so a layer of gigabytes costs its file count in memory, not its size.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from layerkit.errors import RegistryError, one_line

_CHUNK = 1 << 20
# What differs about a file, in the order a finding names them (the first explains the rest:
# another type or content usually comes with another size).
ASPECTS = ("type", "content", "size", "mode", "owner", "mtime", "xattrs")
_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "fifo",
}
INSTRUCTION_LIMIT = 120


@dataclass(frozen=True)
class FileEntry:
    """One tar member as a comparison needs it: the content as a digest (or link target)."""

    path: str
    type: str
    content: str  # sha256 of a file's bytes, a link's target, "" otherwise
    size: int
    mode: int
    owner: str  # "uid:gid"
    mtime: int
    xattrs: tuple[tuple[str, str], ...] = ()

    def differs(self, other: FileEntry) -> tuple[str, ...]:
        return tuple(a for a in ASPECTS if getattr(self, a) != getattr(other, a))


def _path(name: str) -> str:
    return "/" + name.removeprefix("./").strip("/")


def listing(stream: IO[bytes], what: str) -> list[FileEntry]:
    """Every member of a layer (tar, gzip'd or not) in archive order, read as a stream."""
    out: list[FileEntry] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for m in tf:
                digest = ""
                if m.isreg():
                    h = hashlib.sha256()
                    f = tf.extractfile(m)
                    assert f is not None  # a regular member always has a file object
                    while block := f.read(_CHUNK):
                        h.update(block)
                    digest = "sha256:" + h.hexdigest()
                elif m.issym() or m.islnk():
                    digest = m.linkname
                xattrs = tuple(
                    sorted((k, v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr."))
                )
                out.append(
                    FileEntry(
                        _path(m.name),
                        _TYPES.get(m.type, f"type {m.type!r}"),
                        digest,
                        m.size if m.isreg() else 0,
                        m.mode,
                        f"{m.uid}:{m.gid}",
                        int(m.mtime),
                        xattrs,
                    )
                )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RegistryError(f"{what}: not a readable tar layer ({exc})") from None
    return out


@dataclass(frozen=True)
class FileDiff:
    path: str
    aspects: tuple[str, ...]  # of ASPECTS, or ("only in the recorded image",) and the like

    def __str__(self) -> str:
        verb = "differs" if len(self.aspects) == 1 else "differ"
        what = self.aspects[0] if self.aspects[0].startswith("only") else f"{', '.join(self.aspects)} {verb}"
        return f"{one_line(self.path)}: {what}"


def first_file_diff(recorded: Sequence[FileEntry], rebuilt: Sequence[FileEntry]) -> FileDiff | None:
    """The first file, in the recorded layer's order, that differs or is missing from the
    rebuilt one; then the first only the rebuilt has; then a difference in order alone (the
    tar's order is in its digest too). None: the listings are the same."""
    theirs = {e.path: e for e in rebuilt}
    for e in recorded:
        other = theirs.get(e.path)
        if other is None:
            return FileDiff(e.path, ("only in the recorded image",))
        if aspects := e.differs(other):
            return FileDiff(e.path, aspects)
    ours = {e.path for e in recorded}
    for e in rebuilt:
        if e.path not in ours:
            return FileDiff(e.path, ("only in the rebuilt image",))
    for a, b in zip(recorded, rebuilt, strict=False):
        if a.path != b.path:
            return FileDiff(a.path, ("order in the layer",))
    return None


def layer_instructions(config: dict[str, Any]) -> list[str]:
    """The Dockerfile instruction behind each layer, from the config's history: the entries
    without ``empty_layer`` are the layers, in order. A base image made without history (a
    rootfs imported as is) leaves its layers unnamed: the build's own, the last ones, keep
    their names ("" for the others)."""
    history = config.get("history") or []
    made = [
        _instruction(str(h.get("created_by") or ""))
        for h in history
        if isinstance(h, dict) and not h.get("empty_layer")
    ]
    return [""] * (len(diff_ids(config)) - len(made)) + made


def _instruction(created_by: str) -> str:
    text = one_line(created_by.removesuffix(" # buildkit").strip())
    return text if len(text) <= INSTRUCTION_LIMIT else text[: INSTRUCTION_LIMIT - 3] + "..."


def diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs") or {}
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []


def first_layer_diff(recorded: Sequence[str], rebuilt: Sequence[str]) -> int | None:
    """Index of the first layer (uncompressed digest) that differs or exists on one side only."""
    for i, (a, b) in enumerate(zip(recorded, rebuilt, strict=False)):
        if a != b:
            return i
    return None if len(recorded) == len(rebuilt) else min(len(recorded), len(rebuilt))


def config_diff(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> tuple[str, ...]:
    """The top-level config fields that differ (with the same layers: dates, labels, env...)."""
    keys = sorted(set(recorded) | set(rebuilt))
    return tuple(k for k in keys if recorded.get(k) != rebuilt.get(k))


@dataclass(frozen=True)
class Finding:
    """One line of `layerkit verify`'s report."""

    platform: str
    layer: int | None  # 1-based: the image's first layer (its base's) is 1; None: not a layer
    instruction: str
    file: FileDiff | None
    detail: str = ""  # what differs when no file does (config fields, compression, the index)

    def __str__(self) -> str:
        if self.layer is None:
            return f"{self.platform}: {self.detail}"
        where = f"{self.platform}: layer {self.layer} ({self.instruction or 'no history'})"
        return f"{where}: {self.file}" if self.file is not None else f"{where}: {self.detail}"

    def to_json(self) -> dict[str, object]:
        return {
            "platform": self.platform,
            "layer": self.layer,
            "instruction": self.instruction,
            "path": self.file.path if self.file else None,
            "differs": list(self.file.aspects) if self.file else [],
            "detail": self.detail,
            "message": str(self),
        }
