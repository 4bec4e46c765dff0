"""Test helper, never product code: `layerkit ARGS` whose context write is held at POINT.

At the hold it prints `held` on stdout and waits for a line on stdin, where the test either
interrupts it (SIGINT) or lets it go on. POINT: `file` (after the second context file is
written) or `swap` (every file written, just before the new directory takes the old's place).

    python render_held.py POINT render SPEC -o DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from layerkit import atomic
from layerkit.cli import main


def hold() -> None:
    sys.stdout.write("held\n")
    sys.stdout.flush()
    sys.stdin.readline()


def hold_after_second_file() -> None:
    real = atomic._write_synced
    written = []

    def write(path: Path, content: str, mode: int) -> None:
        real(path, content, mode)
        written.append(path)
        if len(written) == 2:
            hold()

    atomic._write_synced = write  # type: ignore[assignment]


def hold_before_swap() -> None:
    real = atomic._swap

    def swap(new: Path, target: Path) -> Path | None:
        hold()
        return real(new, target)

    atomic._swap = swap  # type: ignore[assignment]


if __name__ == "__main__":
    {"file": hold_after_second_file, "swap": hold_before_swap}[sys.argv[1]]()
    sys.exit(main(sys.argv[2:]))
