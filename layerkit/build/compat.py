"""The rendered Dockerfile, adjusted for an engine whose Dockerfile frontend lacks a feature.

Docker 20.10's built-in frontend (BuildKit 0.8) refuses ``COPY --link`` ("Unknown flag:
link"). Without the flag a COPY makes the same files, only its layer depends on the layers
below it again, so the image is the same and so is its hash. The instructions are found
with the project's one Dockerfile reader (render/instructions.py), so a ``--link`` in a
heredoc body, a comment or a COPY's source names is never touched.
"""

from __future__ import annotations

import re

from layerkit.render.instructions import instructions, words

_COPY = frozenset({"copy", "add"})


def _link_flag(text: str) -> str | None:
    """The ``--link`` flag (any ``--link=…`` form) of a COPY/ADD instruction, else None."""
    args = words(text)
    if args[:1] and args[0].lower() == "onbuild":
        args = args[1:]
    if not args or args[0].lower() not in _COPY:
        return None
    for word in args[1:]:
        if not word.startswith("--") or word == "--":
            return None  # flags come first (`--` ends them); then sources and the destination
        if word == "--link" or word.startswith("--link="):
            return word
    return None


def without_copy_link(dockerfile: str) -> tuple[str, int]:
    """(the Dockerfile with every COPY/ADD ``--link`` flag removed, how many were removed)."""
    lines = dockerfile.split("\n")
    removed = 0
    for ins in instructions(dockerfile):
        flag = _link_flag(ins.text)
        if flag is None:
            continue
        # The flag stands among the instruction's first words, on one of its physical lines.
        word = re.compile(rf"(?<![^\t\v\f\r ]){re.escape(flag)}(?=[\t\v\f\r \\]|$)[\t\v\f\r ]*")
        for i in range(ins.first - 1, ins.last):
            if lines[i].lstrip().startswith("#"):
                continue  # a comment line inside the continuation is not part of the instruction
            new, n = word.subn("", lines[i], count=1)
            if n:
                lines[i] = new
                removed += 1
                break
    return "\n".join(lines), removed
