"""Which files of a folder a build reads: .dockerignore semantics and the walk that applies
them. At the bottom of the layers: render hashes a base Dockerfile's context with it, build
sends it, and `run` masks paths with it."""

from __future__ import annotations

import os
import re
import stat as st
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PatternMatcher", "gitignore_patterns", "walk"]


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


def gitignore_patterns(lines: Iterable[str]) -> list[str]:
    """A root .gitignore's lines in .dockerignore's syntax: a pattern without an inner slash
    matches at any depth (`*.pem`, `.env`), one with a slash is anchored at the root. A trailing
    slash (folders only) is dropped: a file and a folder of one name are both left out."""
    out: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip()
        if not line or line.startswith("#"):
            continue
        bang = "!" if line.startswith("!") else ""
        body = line[1:] if bang else line
        body = body.rstrip("/")
        if not body:
            continue
        out.append(f"{bang}{body.lstrip('/')}" if "/" in body else f"{bang}**/{body}")
    return out


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
