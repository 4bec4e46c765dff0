"""One exception tree for layerkit; layerkit.cli maps it to exit codes.

Exit codes (stable, documented in README):
  0 ok, 1 check failed, 2 bad input, 3 environment/daemon/network failure, 130 interrupted.
"""

from __future__ import annotations

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
