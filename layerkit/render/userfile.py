"""A user's base Dockerfile (base.dockerfile or base.dockerfile_file), made into the `base`
stage's parent: read, its last stage named, and its COPY/ADD pointed at its build context.

A `dockerfile_file` reads its folder (or `base.context`): render/usercontext.py lists those
files into the hash and the build sends them under `user-context/`, so each COPY/ADD source
is rewritten to that folder here. An inline `base.dockerfile` has no folder, so a COPY or
ADD of a local path there is refused.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from layerkit import inputs
from layerkit.errors import Position, SpecError, excerpt
from layerkit.render.instructions import Instruction, instruction_name, instructions, parse, read_from, words
from layerkit.render.usercontext import UserContext, collect, prefixed
from layerkit.spec.validate import Checked

# A URL (any scheme) or an scp-like git address: BuildKit fetches it, it is no local file.
_MAX_BYTES = 1 << 20  # a Dockerfile is text; /dev/zero or a stray binary must not hang the read
_REMOTE = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)


def user_base(checked: Checked) -> tuple[str, str, UserContext | None]:
    """(the Dockerfile text with its last stage named, that name, the context it reads)."""
    text = checked_text(checked)
    context = None
    sources = context_sources(text)
    if sources:
        root, loc = context_root(checked)
        context = collect(root, loc)
        text = _point_at_context(text)
    aliased, name = _alias_last_stage(text, checked)
    return aliased, name, context


def context_root(checked: Checked) -> tuple[Path, Position]:
    """The folder a dockerfile_file reads: base.context, else the Dockerfile's own folder."""
    r = checked.resolved
    base = r.spec.base
    assert base and base.dockerfile_file
    key = ("base", "context") if base.context else ("base", "dockerfile_file")
    loc = r.loc(key)
    layer = next((lay for lay in reversed(r.layers) if lay.source == loc.file), r.root)
    assert layer.path is not None  # _read_dockerfile refused a dockerfile_file without a file
    rel = base.context if base.context else str(Path(base.dockerfile_file).parent)
    return layer.path.parent / rel, loc


def _point_at_context(text: str) -> str:
    """Rewrite each COPY/ADD that reads the context to read it under usercontext.PREFIX; one
    instruction stays on its first line (blank lines keep the later numbering)."""
    lines = text.replace("\r\n", "\n").split("\n")
    for ins, head, flags, args in _context_copies(text):
        if any(a.startswith("<<") for a in args):
            continue  # a heredoc's body follows on the next lines: refused below if mixed
        add = head[-1].upper() == "ADD"
        new = [a if _keep(a, add) else prefixed(a) for a in args[:-1]] + args[-1:]
        lines[ins.first - 1 : ins.last] = [" ".join([*head, *flags, json.dumps(new)])] + [""] * (
            ins.last - ins.first
        )
    return "\n".join(lines)


def _keep(source: str, add: bool) -> bool:
    return source.startswith("<<") or (add and (_REMOTE.match(source) is not None or source.startswith("$")))


def _copy_parts(text: str) -> tuple[list[str], list[str], list[str]] | None:
    """(["ONBUILD"?, "COPY"|"ADD"], flags, sources + destination) of a COPY/ADD, else None."""
    words = text.split(None, 1)
    head: list[str] = []
    if len(words) == 2 and words[0].upper() == "ONBUILD":  # runs in layerkit's `base` stage
        head.append(words[0])
        words = words[1].split(None, 1)
    if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
        return None
    head.append(words[0])
    rest, flags = words[1].strip(), []
    while rest.startswith("--"):
        flag, *tail = rest.split(None, 1)
        flags.append(flag)
        rest = tail[0] if tail else ""
    args: list[str] = []
    if rest.startswith("["):
        with contextlib.suppress(ValueError):
            args = [str(a) for a in json.loads(rest)]
    return head, flags, args or rest.split()


def _where(checked: Checked, line: int) -> tuple[str, Position]:
    """How to name line ``line`` of the base Dockerfile: a prefix for an inline one (located
    at its block in the spec), or its file's own position."""
    base = checked.resolved.spec.base
    assert base is not None
    if base.dockerfile is not None or line == 0:
        key = "dockerfile" if base.dockerfile is not None else "dockerfile_file"
        prefix = f"line {line} of base.dockerfile: " if base.dockerfile is not None and line else ""
        return prefix, checked.resolved.loc(("base", key))
    return "", Position(str(_dockerfile_path(checked)), line, 1)


def check_base_dockerfile(checked: Checked) -> None:
    """Raise SpecError when the spec's base Dockerfile (if any) cannot be inlined as is."""
    base = checked.resolved.spec.base
    if base is not None and (base.dockerfile is not None or base.dockerfile_file is not None):
        user_base(checked)  # every check render makes, so validate and render agree


def checked_text(checked: Checked) -> str:
    """The base Dockerfile's text, refused (SpecError at its file:line) when BuildKit would
    read it otherwise than meant once inlined, or when it reads the build context."""
    base = checked.resolved.spec.base
    assert base is not None
    if base.dockerfile is not None:
        text, path = base.dockerfile, None
    else:
        text, path = _read_dockerfile(checked)
    escape = _escape_directive(text)
    if escape not in (None, "\\"):
        # Inlined below layerkit's header, a parser directive is an ordinary comment.
        loc = Position(str(path), 1, 1) if path else checked.resolved.loc(("base", "dockerfile"))
        raise SpecError(
            f"the base Dockerfile sets `# escape={escape}`, which has no effect once layerkit inlines it; "
            "use the default backslash",
            loc,
        )
    for problem in parse(text).problems[:1]:
        if path is None:
            raise SpecError(
                f"line {problem.line} of base.dockerfile: {problem.message}",
                checked.resolved.loc(("base", "dockerfile")),
            )
        raise SpecError(problem.message, Position(str(path), problem.line, problem.col))
    for ins in instructions(text):
        # Instruction names are case-insensitive, and an ONBUILD RUN runs in layerkit's base stage.
        args = words(ins.text)
        args = args[1:] if args[:1] and args[0].lower() == "onbuild" else args
        where = Position(str(path), ins.first, 1) if path else checked.resolved.loc(("base", "dockerfile"))
        prefix = "" if path else f"line {ins.first} of base.dockerfile: "
        run = bool(args) and args[0].lower() == "run"
        mounts = [w for w in args[1:] if w.lower().startswith("--mount=")] if run else []
        for m in mounts:
            opts = dict(kv.partition("=")[::2] for kv in m[len("--mount=") :].split(","))
            kind = opts.get("type", "bind")
            if kind == "secret":
                # The build's secrets (channel and pip credentials) are served to whoever asks.
                raise SpecError(f"{prefix}a base Dockerfile may not mount build secrets; layerkit passes "
                                "credentials only to its own install steps", where)  # fmt: skip
            if kind == "bind" and "from" not in opts:
                raise SpecError(f"{prefix}RUN --mount=type=bind without from= reads a build context that "
                                "layerkit neither sends nor hashes; COPY the files instead", where)  # fmt: skip
        parts = _copy_parts(ins.text)
        if parts and any(a.startswith("<<") for a in parts[2]) and context_sources(ins.text):
            raise SpecError(f"{prefix}a COPY/ADD with a heredoc may not also read the build context; "
                            "split it in two", where)  # fmt: skip
    for number, source in context_sources(text)[:1]:
        if path is None:
            raise SpecError(
                f"line {number} of base.dockerfile copies {source!r} from a build context, and an inline "
                "Dockerfile has none; write it to a file next to its files and set base.dockerfile_file",
                checked.resolved.loc(("base", "dockerfile")),
            )
    return text


def _escape_directive(text: str) -> str | None:
    for line in text.replace("\r\n", "\n").split("\n"):
        m = re.match(r"^#\s*(\w+)\s*=\s*(\S+)\s*$", line)
        if not m:
            return None
        if m.group(1).lower() == "escape":
            return m.group(2)
    return None


def context_sources(text: str) -> list[tuple[int, str]]:
    """(line, source) of each COPY/ADD that reads the build context (not --from, not a URL)."""
    found = []
    for ins, head, _, args in _context_copies(text):
        add = head[-1].upper() == "ADD"
        found += [(ins.first, source) for source in args[:-1] if not _keep(source, add)]
    return found


def _context_copies(text: str) -> Iterator[tuple[Instruction, list[str], list[str], list[str]]]:
    """Each COPY/ADD not from another stage or image: (instruction, head, flags, args)."""
    for ins in instructions(text):
        parts = _copy_parts(ins.text)
        if parts is None:
            continue
        head, flags, args = parts
        if not any(f.lower().startswith("--from=") for f in flags):
            yield ins, head, flags, args


def _dockerfile_path(checked: Checked) -> Path:
    r = checked.resolved
    base = r.spec.base
    assert base and base.dockerfile_file
    loc = r.loc(("base", "dockerfile_file"))
    layer = next((lay for lay in reversed(r.layers) if lay.source == loc.file), r.root)
    if layer.path is None:
        raise SpecError("dockerfile_file needs a spec file to be relative to", loc)
    return layer.path.parent / base.dockerfile_file


def _read_dockerfile(checked: Checked) -> tuple[str, Path]:
    loc = checked.resolved.loc(("base", "dockerfile_file"))
    path = _dockerfile_path(checked)
    fix = "; fix base.dockerfile_file (relative to the file that sets it)"
    return inputs.read_text(path, "base Dockerfile", loc, _MAX_BYTES, fix), path


def _alias_last_stage(text: str, checked: Checked) -> tuple[str, str]:
    """Name the user's last stage so later stages can build FROM it."""
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    froms = [ins for ins in instructions(text) if instruction_name(ins.text) == "from"]
    if not froms:
        prefix, loc = _where(checked, 0)
        raise SpecError("the base Dockerfile has no FROM instruction; start it with `FROM IMAGE`", loc)
    last = froms[-1]
    prefix, loc = _where(checked, last.first)
    parsed = read_from(last.text)
    if parsed is None:
        raise SpecError(
            f"{prefix}cannot read the base Dockerfile's last FROM line {excerpt(last.text.strip())}; "
            "write it as `FROM [--platform=P] IMAGE [AS NAME]`",
            loc,
        )
    if parsed.stage:
        alias = parsed.stage
        if alias in ("base", "env", "runtime"):
            raise SpecError(
                f"{prefix}the base Dockerfile's stage name '{alias}' is used by layerkit; rename it", loc
            )
        return "\n".join(lines), alias
    lines[last.first - 1 : last.last] = [" ".join(last.text.split()) + " AS user-base"]
    return "\n".join(lines), "user-base"
