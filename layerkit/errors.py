"""One exception tree for layerkit; layerkit.cli maps it to exit codes.

Exit codes (stable, documented in README):
  0 ok, 1 check failed, 2 bad input, 3 environment/daemon/network failure, 130 interrupted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Position:
    """A position in an input file; line and col are 1-based, 0 means unknown."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line and self.col:
            return f"{self.file}:{self.line}:{self.col}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


# C0 and C1 controls, DEL, Unicode line/paragraph separators, and lone surrogates (from an
# undecodable file name): none may reach a terminal from a value we echo.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def one_line(text: str) -> str:
    """`text` safe for one line of a terminal: control characters shown as escapes."""
    return _UNSAFE.sub(_escape, text)


def excerpt(value: object, limit: int = 24) -> str:
    """A short quoted excerpt of something read from a file: an error about a foreign file
    (a layer or Dockerfile named by path) must not print that file's contents."""
    text = one_line(str(value))
    return repr(text if len(text) <= limit else text[:limit] + "...")


def error_line(where: object, message: str) -> str:
    """The one error format, `file:line:col: error: message`, always one line: a value the
    message echoes (a newline, an escape sequence, a bell) is printed escaped."""
    return one_line(f"{where or 'layerkit'}: error: {message}")


class LayerkitError(Exception):
    """Base of every error layerkit raises on purpose."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, message: str, location: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class SpecError(LayerkitError):
    """Bad input: the spec, a layer, a lockfile or a CLI argument is wrong."""

    exit_code = EXIT_BAD_INPUT


class CheckFailed(LayerkitError):
    """A check ran and found something out of date (e.g. a stale lock)."""

    exit_code = EXIT_CHECK_FAILED


class EnvironmentFailure(LayerkitError):
    """Something outside the input failed: solver, daemon, registry, network."""

    exit_code = EXIT_ENVIRONMENT


class SolveError(SpecError):
    """The spec cannot be solved (unsatisfiable, unknown package): fix the spec."""


class DaemonError(EnvironmentFailure):
    """BuildKit or the Docker engine is unreachable or failed."""


class RegistryError(EnvironmentFailure):
    """A registry is unreachable or refused a request."""


class RegistryUnreachable(RegistryError):
    """No answer from a registry (refused, timed out): builds go on without it, with a warning."""
