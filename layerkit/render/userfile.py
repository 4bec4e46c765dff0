"""A user's base Dockerfile (base.dockerfile or base.dockerfile_file), made into the `base`
stage's parent: read, its last stage named, and refused when it reads the build context.

layerkit sends only the context it renders (Dockerfile, lock, installer), so a COPY or ADD
of a local path would fail in BuildKit, and the environment hash would not cover the files
it meant: the same hash could name different images. Such a base is refused at render time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from layerkit import inputs
from layerkit.errors import Location, SpecError
from layerkit.spec.validate import Checked

_REMOTE = re.compile(r"^(https?://|git@|git://)")


def user_base(checked: Checked) -> tuple[str, str]:
    """(the Dockerfile text with its last stage named, that name)."""
    base = checked.resolved.spec.base
    assert base is not None
    if base.dockerfile is not None:
        text, path = base.dockerfile, None
    else:
        text, path = _read_dockerfile(checked)
    for number, source in context_sources(text):
        what = (
            f"the base Dockerfile copies {source!r} from the build context, which layerkit does not "
            "send (nor hash); use COPY --from=IMAGE or ADD of a URL, or build that base yourself and "
            "set base.image"
        )
        if path is None:
            raise SpecError(
                f"line {number} of base.dockerfile: {what}", checked.resolved.loc(("base", "dockerfile"))
            )
        raise SpecError(what, Location(str(path), number))
    return _alias_last_stage(text, checked)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, instruction with continuations joined), comments dropped."""
    lines = text.replace("\r\n", "\n").split("\n")
    escape = "\\"
    for line in lines:  # parser directives come first; only `escape` matters here
        m = re.match(r"^#\s*(\w+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("\\", "`"):
            escape = m.group(2)
    start, parts = 0, list[str]()
    for number, line in enumerate(lines, 1):
        if not parts and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if parts and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if not parts:
            start = number
        stripped = line.rstrip()
        if stripped.endswith(escape):
            parts.append(stripped[: -len(escape)])
            continue
        parts.append(line)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


def context_sources(text: str) -> list[tuple[int, str]]:
    """(line, source) of each COPY/ADD that reads the build context (not --from, not a URL)."""
    found = []
    for number, line in _logical_lines(text):
        words = line.split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1].strip()
        flags = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag.lower())
            rest = rest.strip()
        if any(f.startswith("--from=") for f in flags):
            continue
        if rest.startswith("["):
            try:
                args = [str(a) for a in json.loads(rest)]
            except ValueError:
                args = rest.split()
        else:
            args = rest.split()
        for source in args[:-1]:
            if source.startswith("<<") or (words[0].upper() == "ADD" and _REMOTE.match(source)):
                continue  # heredoc content is in the Dockerfile; a URL is fetched by BuildKit
            found.append((number, source))
    return found


def _read_dockerfile(checked: Checked) -> tuple[str, Path]:
    r = checked.resolved
    base = r.spec.base
    assert base and base.dockerfile_file
    loc = r.loc(("base", "dockerfile_file"))
    layer = next((lay for lay in reversed(r.layers) if lay.source == loc.file), r.root)
    if layer.path is None:
        raise SpecError("dockerfile_file needs a spec file to be relative to", loc)
    path = layer.path.parent / base.dockerfile_file
    inputs.note(path)
    try:
        return path.read_text(encoding="utf-8"), path
    except OSError as exc:
        raise SpecError(f"cannot read base Dockerfile {path}: {exc.strerror}", loc) from None
    except UnicodeDecodeError:
        raise SpecError(f"base Dockerfile {path} is not UTF-8 text", loc) from None


def _alias_last_stage(text: str, checked: Checked) -> tuple[str, str]:
    """Name the user's last stage so later stages can build FROM it."""
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    froms = [i for i, line in enumerate(lines) if re.match(r"(?i)^\s*FROM\s", line)]
    loc = checked.resolved.loc(("base",))
    if not froms:
        raise SpecError("the base Dockerfile has no FROM instruction", loc)
    last = lines[froms[-1]]
    m = re.match(r"(?i)^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", last)
    if not m:
        raise SpecError(f"cannot read the base Dockerfile's last FROM line: {last.strip()[:80]!r}", loc)
    if m.group(2):
        alias = m.group(2).lower()
        if alias in ("base", "env", "runtime"):
            raise SpecError(f"the base Dockerfile's stage name '{alias}' is used by layerkit; rename it", loc)
        return "\n".join(lines), alias
    lines[froms[-1]] = f"{last.rstrip()} AS user-base"
    return "\n".join(lines), "user-base"
