"""A root .gitignore (or .amlignore) read with git's rules through .dockerignore's matcher
(ignorefiles.gitignore_patterns): unanchored names match at any depth, slashed ones at the root."""

from __future__ import annotations

import pytest

from layerkit.ignorefiles import PatternMatcher, gitignore_patterns


@pytest.mark.parametrize(
    ("lines", "path", "ignored"),
    [
        ([".env"], ".env", True),
        ([".env"], "app/.env", True),  # git: any depth; .dockerignore would keep it
        (["*.pem"], "deep/er/key.pem", True),
        (["/secret.yaml"], "secret.yaml", True),
        (["/secret.yaml"], "sub/secret.yaml", False),  # a leading slash anchors at the root
        (["build/"], "build/out.bin", True),
        (["build/"], "src/build/out.bin", True),
        (["docs/*.md"], "docs/a.md", True),
        (["docs/*.md"], "x/docs/a.md", False),  # an inner slash anchors too
        (["*.log", "!keep.log"], "keep.log", False),
        (["*.log", "!keep.log"], "a/b.log", True),
        (["# a comment", "", "   "], "a comment", False),
    ],
)
def test_gitignore_rules(lines: list[str], path: str, ignored: bool) -> None:
    assert PatternMatcher(gitignore_patterns(lines)).matches(path) is ignored
