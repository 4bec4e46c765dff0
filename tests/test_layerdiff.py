"""`layerkit verify`'s comparison (build/layerdiff.py): tar listings read as streams, the first
differing layer and file, and the one-line finding. Pure: layers made here with tarfile."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from layerkit.build.layerdiff import (
    FileDiff,
    Finding,
    config_diff,
    diff_ids,
    first_file_diff,
    first_layer_diff,
    layer_instructions,
    listing,
)
from layerkit.build.verify import NOT_REPRODUCIBLE, index_finding
from layerkit.errors import RegistryError


def _layer(*members: tuple[str, bytes | None, dict[str, object]], gz: bool = True) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, attrs in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 315532800, 0o644
            for k, v in attrs.items():
                setattr(info, k, v)
            if data is None and info.type == tarfile.REGTYPE:
                info.type = tarfile.DIRTYPE
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = out.getvalue()
    return io.BytesIO(gzip.compress(raw, mtime=0) if gz else raw)


class _Trickle(io.RawIOBase):
    """A stream that answers at most 7 bytes per read and cannot seek: as a socket does."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self._data[self._pos : self._pos + min(7, len(b))]
        b[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def test_listing_reads_a_gzip_stream_that_cannot_seek_in_archive_order() -> None:
    data = _layer(
        ("etc", None, {}),
        ("etc/hosts", b"127.0.0.1 x\n", {}),
        ("./bin/sh", None, {"type": tarfile.SYMTYPE, "linkname": "busybox"}),
    )
    entries = listing(_Trickle(data.getvalue()), "layer")  # type: ignore[arg-type]
    assert [(e.path, e.type) for e in entries] == [
        ("/etc", "directory"),
        ("/etc/hosts", "file"),
        ("/bin/sh", "symlink"),
    ]
    hosts = entries[1]
    assert hosts.size == 12 and hosts.content.startswith("sha256:") and hosts.owner == "0:0"
    assert entries[2].content == "busybox"
    # Plain tar (uncompressed layers) too.
    plain = listing(_layer(("a", b"x", {}), gz=False), "layer")
    assert [e.path for e in plain] == ["/a"]


def test_listing_of_a_broken_layer_is_a_registry_error_not_a_traceback() -> None:
    with pytest.raises(RegistryError, match="layer sha256:abc: not a readable tar layer"):
        listing(io.BytesIO(gzip.compress(b"not a tar at all" * 100)), "layer sha256:abc")


def _entries(*members: tuple[str, bytes | None, dict[str, object]]) -> list:  # type: ignore[type-arg]
    return listing(_layer(*members), "layer")


@pytest.mark.parametrize(
    ("changed", "aspects"),
    [
        ({"data": b"1700000001\n"}, ("content",)),
        ({"data": b"17000000012\n"}, ("content", "size")),
        ({"attrs": {"mode": 0o600}}, ("mode",)),
        ({"attrs": {"uid": 1000, "gid": 1000}}, ("owner",)),
        ({"attrs": {"mtime": 1700000000}}, ("mtime",)),
        ({"data": None, "attrs": {"type": tarfile.SYMTYPE, "linkname": "x"}}, ("type", "content", "size")),
        ({"attrs": {"pax_headers": {"SCHILY.xattr.user.k": "v"}}}, ("xattrs",)),
    ],
)
def test_the_first_differing_file_says_what_differs(
    changed: dict[str, object], aspects: tuple[str, ...]
) -> None:
    same = ("etc/passwd", b"root:x:0:0\n", {})
    recorded = _entries(same, ("built-at", b"1700000000\n", {}), ("z", b"z", {"mode": 0o600}))
    attrs = {**changed.get("attrs", {})}  # type: ignore[dict-item]
    data = changed.get("data", b"1700000000\n")
    rebuilt = _entries(same, ("built-at", data, attrs), ("z", b"other", {}))  # type: ignore[arg-type]
    diff = first_file_diff(recorded, rebuilt)
    assert diff == FileDiff("/built-at", aspects)  # the first in the layer's order, not /z
    assert str(diff) == f"/built-at: {', '.join(aspects)} {'differs' if len(aspects) == 1 else 'differ'}"


def test_files_on_one_side_only_and_the_order_alone() -> None:
    a, b = ("a", b"a", {}), ("b", b"b", {})
    assert first_file_diff(_entries(a, b), _entries(a)) == FileDiff("/b", ("only in the recorded image",))
    assert str(first_file_diff(_entries(a), _entries(a, b))) == "/b: only in the rebuilt image"
    assert first_file_diff(_entries(a, b), _entries(b, a)) == FileDiff("/a", ("order in the layer",))
    assert first_file_diff(_entries(a, b), _entries(a, b)) is None


def test_layers_are_named_by_the_history_entries_that_made_them() -> None:
    config = {
        "rootfs": {"type": "layers", "diff_ids": ["sha256:1", "sha256:2", "sha256:3"]},
        "history": [
            {"created_by": "debootstrap"},
            {"created_by": "ARG SOURCE_DATE_EPOCH=315532800", "empty_layer": True},
            {"created_by": "RUN /bin/sh -c date +%s%N > /built-at # buildkit"},
            {"created_by": "ENV X=1", "empty_layer": True},
            {"created_by": "COPY /opt/env /opt/env # buildkit"},
        ],
    }
    assert diff_ids(config) == ["sha256:1", "sha256:2", "sha256:3"]
    assert layer_instructions(config) == [
        "debootstrap",
        "RUN /bin/sh -c date +%s%N > /built-at",
        "COPY /opt/env /opt/env",
    ]
    long = layer_instructions({"history": [{"created_by": "RUN " + "x" * 500 + "\n"}]})[0]
    assert len(long) == 120 and long.endswith("...") and "\n" not in long
    assert diff_ids({}) == [] and layer_instructions({}) == []
    # A base without history: its layers go unnamed, the build's own keep their instructions.
    bare = {"rootfs": {"diff_ids": ["sha256:1", "sha256:2"]}, "history": [{"created_by": "RUN x # buildkit"}]}
    assert layer_instructions(bare) == ["", "RUN x"]


def test_first_layer_diff() -> None:
    assert first_layer_diff(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert first_layer_diff(["a", "b"], ["a", "b", "c"]) == 2
    assert first_layer_diff(["a", "b", "c"], ["a", "b"]) == 2
    assert first_layer_diff(["a"], ["a"]) is None
    assert config_diff({"created": "1", "os": "linux"}, {"created": "2", "os": "linux", "x": 1}) == (
        "created",
        "x",
    )


def test_a_finding_is_one_line_naming_platform_layer_instruction_and_file() -> None:
    f = Finding("linux-64", 3, "RUN /bin/sh -c date +%s%N > /built-at", FileDiff("/built-at", ("content",)))
    assert str(f) == "linux-64: layer 3 (RUN /bin/sh -c date +%s%N > /built-at): /built-at: content differs"
    doc = f.to_json()
    assert doc["layer"] == 3 and doc["path"] == "/built-at" and doc["differs"] == ["content"]
    assert doc["message"] == str(f)
    # A file name with a newline stays on one line.
    odd = Finding("linux-64", 1, "", FileDiff("/a\nb", ("mode",)))
    assert "\n" not in str(odd) and str(odd) == "linux-64: layer 1 (no history): /a\\nb: mode differs"
    cfg = Finding("linux-aarch64", None, "", None, "image config differs (created)")
    assert str(cfg) == "linux-aarch64: image config differs (created)"
    assert index_finding("sha256:a", "sha256:a", "r:h") is None
    assert (
        str(index_finding("sha256:a", "sha256:b", "r:h")) == "index: r:h: recorded sha256:a, rebuilt sha256:b"
    )
    assert (
        "\n" not in NOT_REPRODUCIBLE and "dockerd 24+" in NOT_REPRODUCIBLE and "buildkitd" in NOT_REPRODUCIBLE
    )


class _Engine:
    """What reproducible_engine asks of a BuildKit client: its capabilities."""

    def __init__(self, caps: object) -> None:
        self._caps = caps

    def capabilities(self) -> object:
        return self._caps


@pytest.mark.parametrize(
    ("exporters", "version", "refused"),
    [
        ({"moby", "local", "tar"}, None, True),  # dockerd 20.10 / the classic image store
        ({"image", "oci", "local"}, "v0.12.5", True),  # buildkitd before rewrite-timestamp
        ({"moby", "image", "local", "tar"}, "v0.0.0+unknown", False),  # Docker 26, containerd store
        ({"image", "oci", "local"}, "v0.13.2", False),  # buildkitd
    ],
)
def test_verify_refuses_engines_that_cannot_build_reproducibly(
    exporters: set[str], version: str | None, refused: bool
) -> None:
    from layerkit.build.client import Capabilities
    from layerkit.build.request import REPRODUCIBLE_EPOCH
    from layerkit.build.verify import reproducible_engine
    from layerkit.errors import EXIT_ENVIRONMENT, DaemonError

    caps = Capabilities(True, frozenset(exporters), frozenset(), frozenset(), version, True)
    if refused:
        with pytest.raises(DaemonError) as err:
            reproducible_engine(_Engine(caps))  # type: ignore[arg-type]
        assert err.value.message == NOT_REPRODUCIBLE and err.value.exit_code == EXIT_ENVIRONMENT
    else:
        assert reproducible_engine(_Engine(caps)) == REPRODUCIBLE_EPOCH  # type: ignore[arg-type]
