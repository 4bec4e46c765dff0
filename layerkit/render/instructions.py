r"""A Dockerfile read as BuildKit reads it (default escape character): one instruction per
logical line, continuations joined, blank and comment lines dropped (also inside a
continuation), heredoc bodies skipped (their lines reported); and the problems that make a
base Dockerfile wrong once layerkit inlines it; and FROM lines read as BuildKit's
instructions.parseFrom does. Shared by the base-Dockerfile checks (render/userfile.py),
`layerkit plan`'s step list (build/decisions.py), the engine adjustments (build/compat.py)
and the hash's normalisation (hashing/normalise.py: comments go, heredoc bodies stay).

The rules follow moby/buildkit frontend/dockerfile/parser (parser.go: Parse, processLine,
trimContinuationCharacter, heredocsFromLine, reHeredoc; shell/lex.go: processPossibleHeredoc)
and its tests (parser_heredoc_test.go: "<<<EOF" is not a heredoc):
- a line continues only when `\` is followed by nothing but spaces and tabs, and is not
  itself escaped (`[^\\]\\[ \t]*$`); a no-break space after it ends the instruction;
- instruction names and flags are split on ASCII white space only, so U+00A0 joins words;
- a heredoc is a shell word `[n]<<[-]WORD` (WORD unquoted by shell rules) in RUN, COPY or
  ADD (also under ONBUILD), not in JSON form; its body ends at the first line that is WORD
  exactly (after leading tabs with `<<-`); with none, BuildKit fails "unterminated heredoc";
- at end of file an open continuation simply ends the instruction: harmless alone, but
  layerkit appends `FROM … AS base` after the user's text, which it would swallow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_SPACE = re.compile(r"[\t\v\f\r ]+")  # BuildKit splits words on ASCII white space only
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")  # instructions.parseFrom's stage-name rule
_CONTINUATION = re.compile(r"([^\\])\\[ \t]*\Z|^\\[ \t]*\Z")
_HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})
_HERESTRING_SHELLS = frozenset({"bash", "zsh", "ksh", "ksh93", "mksh"})
NBSP = "\u00a0"


@dataclass(frozen=True)
class Instruction:
    first: int  # 1-based line numbers
    last: int
    text: str  # each physical line stripped, joined with one space


@dataclass(frozen=True)
class From:
    image: str
    stage: str | None  # the `AS` name, lower-cased as BuildKit names stages
    platform: str | None  # the --platform value as written


@dataclass(frozen=True)
class Problem:
    line: int
    col: int  # 0: the whole line
    message: str


@dataclass(frozen=True)
class Parsed:
    instructions: tuple[Instruction, ...]
    problems: tuple[Problem, ...]  # in line order
    heredocs: tuple[tuple[int, int], ...] = ()  # (first, last) lines of each body, its end word's included


def _go_space(c: str) -> bool:  # Go's unicode.IsSpace
    return c in "\t\n\v\f\r \x85\xa0" or (c > "\xff" and c.isspace())


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and _go_space(s[i]):
        i += 1
    return s[i:]


def _continues(token: str) -> tuple[str, bool]:
    """(the line without its continuation `\\`, whether the instruction goes on)."""
    if _CONTINUATION.search(token):
        return _CONTINUATION.sub(r"\1", token), True
    return token, False


def _words(line: str) -> list[tuple[str, bool]] | None:
    """Shell words as BuildKit's lexer splits them for heredoc detection (quotes and escapes
    kept raw), each with whether a `<<<` here-string starts in it; None on an open quote."""
    words: list[tuple[str, bool]] = []
    word, here, i = "", False, 0
    while i < len(line):
        c = line[i]
        if c in "'\"":
            end = i + 1
            while end < len(line) and line[end] != c:
                end += 2 if c == '"' and line[end] == "\\" else 1
            if end >= len(line):
                return None
            word += line[i : end + 1]
            i = end + 1
        elif c == "\\":
            word += line[i : i + 2]
            i += 2
        elif c == "<" and line[i + 1 : i + 2] == "<":
            j = i + 2
            here = here or line[j : j + 1] == "<"
            while j < len(line) and line[j] in " \t\r":
                j += 1
            word += line[i:j]
            i = j
        elif _go_space(c):
            if word:
                words.append((word, here))
            word, here, i = "", False, i + 1
        else:
            word += c
            i += 1
    if word:
        words.append((word, here))
    return words


def _unquote(rest: str) -> str | None:
    """A heredoc word with shell quoting removed; None when it is not one word."""
    try:
        return _unquoted(rest)
    except (ValueError, IndexError):  # an open quote: BuildKit's lexer fails, no heredoc
        return None


def _unquoted(rest: str) -> str | None:
    out, i = "", 0
    while i < len(rest):
        c = rest[i]
        if c == "'":
            end = rest.index("'", i + 1)
            out, i = out + rest[i + 1 : end], end + 1
        elif c == '"':
            i += 1
            while rest[i] != '"':
                if rest[i] == "\\" and rest[i + 1] in '"$\\':
                    i += 1
                out, i = out + rest[i], i + 1
            i += 1
        elif c == "\\":
            out, i = out + rest[i + 1 : i + 2], i + 2
        elif _go_space(c):
            return None
        else:
            out, i = out + c, i + 1
    return out or None


def words(text: str) -> list[str]:
    """An instruction's words as BuildKit splits them (ASCII white space; U+00A0 joins)."""
    return [w for w in _SPACE.split(text) if w]


def instruction_name(text: str) -> str:
    """An instruction's name, lower-cased ("" for none); ONBUILD is not unwrapped."""
    return split_name(text)[0].lower()


def split_name(text: str) -> tuple[str, str]:
    """(an instruction's name as written, the rest of its text)."""
    parts = _SPACE.split(text.strip(" \t\v\f\r"), maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def read_from(text: str) -> From | None:
    """A FROM instruction's parts; None when `text` is not `FROM [--platform=P] IMAGE [AS NAME]`
    with a valid stage name (BuildKit refuses any other flag, word count or name)."""
    args = words(text)
    if not args or args.pop(0).lower() != "from":
        return None
    platform = None
    while args and args[0].startswith("--"):
        flag, eq, value = args.pop(0).partition("=")
        if flag != "--platform" or not eq or not value or platform is not None:
            return None
        platform = value
    if len(args) == 1:
        return From(args[0], None, platform)
    if len(args) == 3 and args[1].lower() == "as" and _STAGE_NAME.fullmatch(args[2].lower()):
        return From(args[0], args[2].lower(), platform)
    return None


def _command(line: str) -> tuple[str, str]:
    """(instruction name lowercased, its arguments after any --flags); ONBUILD unwrapped."""
    parts = _SPACE.split(line.strip(), maxsplit=1)
    name, rest = parts[0].lower(), parts[1] if len(parts) > 1 else ""
    if name == "onbuild":
        return _command(rest)
    while rest.startswith("--"):
        rest = [*re.split(r"\s+", rest, maxsplit=1), ""][1]
    return name, rest


def _is_json(args: str) -> bool:
    try:
        value = json.loads(args)
    except ValueError:
        return False
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def parse(text: str) -> Parsed:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no line
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    out: list[Instruction] = []
    problems: list[Problem] = []
    bodies: list[tuple[int, int]] = []
    shell = "sh"  # the RUN shell of the current stage
    i = 0
    while i < len(lines):
        token = _lstrip(lines[i].rstrip("\r\n"))
        i += 1
        if token.startswith("#"):
            token = ""
        first = i
        token, going = _continues(token)
        if not going and not token:
            continue
        tokens, parts, spaced, last_escape = [token], [token.strip()], [first], first
        while going and i < len(lines):
            raw = lines[i].rstrip("\r\n")
            i += 1
            if _lstrip(raw).startswith("#") or not _lstrip(raw):
                continue  # comments and empty lines inside a continuation are dropped
            token, going = _continues(raw)
            last_escape = i if going else last_escape
            tokens.append(token)
            parts.append(token.strip())
            spaced.append(i)
        if going:
            problems.append(Problem(last_escape, 0, _EOF_CONTINUATION))
        for number in spaced:
            if (col := lines[number - 1].find(NBSP)) >= 0:
                problems.append(Problem(number, col + 1, _NBSP))
                break
        out.append(Instruction(first, i, " ".join(p for p in parts if p)))
        line = "".join(tokens)  # what BuildKit lexes: continuation lines keep their indent
        name, args = _command(line)
        if name == "from":
            shell = "sh"
        elif name == "shell" and _is_json(args) and json.loads(args):
            shell = json.loads(args)[0].rsplit("/", 1)[-1]
        if name not in _HEREDOC_INSTRUCTIONS or _is_json(args) or "<<" not in line:
            continue
        words = _words(line) or []
        if name == "run" and shell not in _HERESTRING_SHELLS and any(here for _, here in words):
            problems.append(Problem(first, 0, _HERESTRING))
        for word, _ in words:
            m = _HEREDOC_WORD.match(word)
            name_word = _unquote(m.group(3)) if m and m.group(3) else None
            if name_word is None:
                continue
            chomp = m.group(2) == "-" if m else False
            start = i + 1
            while i < len(lines):
                body = lines[i].rstrip("\r\n")
                i += 1
                if (body.lstrip("\t") if chomp else body) == name_word:
                    break
            else:
                problems.append(Problem(first, 0, _UNTERMINATED.format(word=word, name=name_word)))
            if i >= start:
                bodies.append((start, i))
    return Parsed(tuple(out), tuple(sorted(problems, key=lambda p: (p.line, p.col))), tuple(bodies))


def instructions(text: str) -> list[Instruction]:
    return list(parse(text).instructions)


_NBSP = (
    "a no-break space (U+00A0) here: BuildKit does not read it as a space (`ENV` followed by one "
    "is an unknown instruction, and a `\\` followed by one does not continue the line); "
    "replace it with a plain space"
)
_EOF_CONTINUATION = (
    "the file ends inside a line continuation (this line's `\\` has no next line): BuildKit "
    "would join layerkit's `FROM … AS base` to this instruction; remove the `\\`"
)
_UNTERMINATED = (
    "unterminated heredoc {word}: no later line is exactly `{name}` (BuildKit ends a heredoc "
    "only at its word alone on a line, after leading tabs with `<<-`); add that line"
)
_HERESTRING = (
    "`<<<` is a here-string, not a heredoc: BuildKit passes it to the RUN shell, /bin/sh "
    '(dash on Debian and Ubuntu), which has none; use a pipe or a heredoc, or set SHELL ["/bin/bash", "-c"] first'
)
