"""FileSync's walk and .dockerignore semantics: pure logic on a temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit.build.filesync import GO_DIR, to_stat
from layerkit.ignorefiles import PatternMatcher, walk


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        (["*.log"], "a.log", True),
        (["*.log"], "sub/a.log", False),  # * does not cross directories
        (["**/*.log"], "sub/deep/a.log", True),
        (["**/*.log"], "a.log", True),
        (["build"], "build/x/y.o", True),  # a matched directory covers its contents
        (["build", "!build/keep"], "build/keep", False),
        (["build", "!build/keep"], "build/other", True),
        (["/abs/path"], "abs/path", True),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[a-c]x"], "bx", True),
        (["[!a-c]x"], "bx", False),
        (["# comment", ""], "# comment", False),
        (["*", "!*.py"], "main.py", False),
        (["docs/**"], "docs", False),
        (["docs/**"], "docs/a/b.md", True),
    ],
)
def test_dockerignore_semantics(patterns: list[str], path: str, ignored: bool) -> None:
    assert PatternMatcher(patterns).matches(path) is ignored


def _tree(root: Path) -> None:
    for rel in ("b.txt", "a/z.txt", "a/b/c.txt", "a.txt", "skip/x", "skip/keep", "logs/1.log"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    (root / "link").symlink_to("a.txt")


def test_walk_order_is_fsutils_and_parents_come_first(tmp_path: Path) -> None:
    _tree(tmp_path)
    names = [rel for rel, _ in walk(tmp_path, excludes=["skip", "!skip/keep", "**/*.log"])]
    assert names == [
        "a", "a/b", "a/b/c.txt", "a/z.txt", "a.txt", "b.txt", "link", "logs", "skip", "skip/keep",
    ]  # fmt: skip


def test_walk_with_include_patterns_sends_only_those_and_their_parents(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert [rel for rel, _ in walk(tmp_path, includes=["a/b/c.txt"])] == ["a", "a/b", "a/b/c.txt"]


def test_stat_uses_go_file_modes(tmp_path: Path) -> None:
    _tree(tmp_path)
    entries = dict(walk(tmp_path))
    d = to_stat("a", entries["a"], tmp_path)
    assert d.mode & GO_DIR and d.size == 0
    f = to_stat("a.txt", entries["a.txt"], tmp_path)
    assert f.mode == 0o644 and f.size == len("a.txt") and f.modTime == entries["a.txt"].st_mtime_ns
    link = to_stat("link", entries["link"], tmp_path)
    assert link.linkname == "a.txt" and link.mode & (1 << 27)
