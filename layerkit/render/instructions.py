"""A Dockerfile read as BuildKit reads it (default escape character): one instruction per
logical line, continuations joined, blank and comment lines dropped (also inside a
continuation), heredoc bodies skipped. Shared by the base-Dockerfile checks
(render/userfile.py) and `layerkit plan`'s step list (build/buildplan.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")


@dataclass(frozen=True)
class Instruction:
    first: int  # 1-based line numbers
    last: int
    text: str  # each physical line stripped, joined with one space


def _skipped(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def instructions(text: str) -> list[Instruction]:
    lines = text.replace("\r\n", "\n").split("\n")
    out, i = [], 0
    while i < len(lines):
        if _skipped(lines[i]):
            i += 1
            continue
        first, parts = i, []
        while i < len(lines):
            current = lines[i].strip()
            i += 1
            if not current.endswith("\\"):
                parts.append(current)
                break
            parts.append(current[:-1].rstrip())
            while i < len(lines) and _skipped(lines[i]):
                i += 1
        joined = " ".join(parts)
        out.append(Instruction(first + 1, i, joined))
        for m in _HEREDOC.finditer(joined):  # the body is content, up to its terminator line
            while i < len(lines) and lines[i].strip() != m.group(3):
                i += 1
            i += 1
    return out
