"""Checks for values that end up in a Dockerfile: each returns a problem string or None.

They are deliberately narrow (allow-lists): a value that passes cannot start a new
Dockerfile instruction (no newline, no line continuation, no heredoc marker).
"""

from __future__ import annotations

import re

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
APT_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*(?::[a-z0-9]+)?(?:=[A-Za-z0-9.+:~*_-]+)?")
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
ABS_PATH = re.compile(r"/[A-Za-z0-9._/+@-]*")
SHM_SIZE = re.compile(r"[0-9]+[bkmgBKMG]?")
# URLs: shell-safe characters only, and no user:password@ (credentials never go in a spec).
URL = re.compile(r"(?:https?|file)://(?:[A-Za-z0-9.-]+(?::[0-9]{1,5})?)?(?:/[A-Za-z0-9._~%+=,:/-]*)?")
CHANNEL = re.compile(rf"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*|{URL.pattern}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def no_control(value: str) -> str | None:
    if _CONTROL.search(value):
        return "must be a single line without control characters"
    return None


def shell_line(value: str) -> str | None:
    """A RUN command: one line, not ending in a continuation, no heredoc."""
    if problem := no_control(value):
        return problem
    if not value.strip():
        return "must not be empty"
    if value.rstrip().endswith("\\"):
        return "must not end with a line-continuation backslash"
    # BuildKit treats any `<<WORD` (quoted, backslashed or numeric) as a heredoc; only `<<<`
    # (a here-string) is plain shell.
    if re.search(r"(?<!<)<<(?!<)", value):
        return "must not contain a heredoc (<<WORD); put the text in a file instead"
    return None


def conda_spec(value: str) -> str | None:
    """A conda dependency: read by spec/matchspec.py (the one reader); a channel it names must be
    a channel. The solver's grammar is checked where a full validation runs (spec/grammar.py)."""
    from layerkit.spec import matchspec

    if problem := matchspec.problem(value):
        return problem
    channel = matchspec.parse(value).channel
    if channel is not None and not matches(CHANNEL, channel):
        return f"'{value}': '{channel}' is not a channel"
    return None


def channel(value: str) -> str | None:
    """A `channels:` entry: a name, or a URL that may use $VAR / ${VAR} (spec/channelvars.py)."""
    if problem := no_control(value):
        return problem
    if "$" in value:
        from layerkit.spec import channelvars

        return channelvars.problem(value, URL)
    return None if CHANNEL.fullmatch(value) else f"'{value}' is not a channel"


def pip_spec(value: str) -> str | None:
    from layerkit.spec import pip

    return pip.problem(value)


def is_pinned_conda(value: str) -> bool:
    from layerkit.spec.matchspec import parse

    try:
        return parse(value).version is not None
    except ValueError:
        return False


def is_pinned_pip(value: str) -> bool:
    from layerkit.spec import pip

    return pip.is_pinned(value)


def matches(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Numeric-aware order: 2 < 10, 1.9 < 1.10; numbers before words at the same place."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[^\d.\-_]+", version))
