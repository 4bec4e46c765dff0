"""Lay the blocks out as stages: base, env (when an environment is installed), runtime."""

from __future__ import annotations

from collections.abc import Sequence

from layerkit.render.blocks.dockerfile import Arg, Block, From, Instruction, Stage

# SOURCE_DATE_EPOCH of every build: 1980-01-01T00:00:00Z. A constant, not the clock, so the
# same Dockerfile gives the same image (issue 18): tools in the RUNs date what they write by it
# (useradd's password-change day in /etc/shadow; pyc files are hash-based under it), and the
# builder hands BuildKit the same value (config `created`, layer file mtimes). Not taken from
# the lock: a lock records no package dates. Not earlier: zip (wheels) refuses dates before
# 1980, and rattler writes the installed files with this mtime. Rendered, so in the hash.
SOURCE_DATE_EPOCH = 315532800
_EPOCH = Arg("SOURCE_DATE_EPOCH", str(SOURCE_DATE_EPOCH))


def stages(
    base_from: tuple[Instruction, ...], runtime_ref: str | None, blocks: Sequence[Block]
) -> tuple[tuple[Stage, ...], tuple[Instruction, ...]]:
    """(stages, closing): each stage's instructions are its blocks', in `blocks` order.

    `base_from` starts the base stage (its FROM, after an inlined user Dockerfile). The runtime
    stage is `runtime_ref` set up like the base (Block.runtime), or the base itself; either
    way it then takes each block's final part. The closing instructions follow the labels,
    which name the hash of this very plan. Each stage declares SOURCE_DATE_EPOCH after its
    FROM (an ARG reaches only the RUNs of the stage that declares it).
    """
    base = Stage(_dated((*base_from, *(i for b in blocks for i in b.base))))
    env = _dated(tuple(i for b in blocks for i in b.env))
    if runtime_ref is not None:
        setup: tuple[Instruction, ...] = (
            From(runtime_ref, "runtime"),
            *(i for b in blocks for i in b.runtime),
        )
    else:
        setup = (From("base", "runtime"),)
    runtime = Stage(_dated((*setup, *(i for b in blocks for i in b.final))))
    closing = tuple(i for b in blocks for i in b.closing)
    return (base, *((Stage(env),) if env else ()), runtime), closing


def _dated(instructions: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
    """`instructions` with SOURCE_DATE_EPOCH declared after the (last) FROM: a user's inlined
    Dockerfile stays as written, layerkit's own FROM that follows it gets the ARG."""
    at = max((n for n, i in enumerate(instructions) if isinstance(i, From)), default=None)
    if at is None:
        return instructions
    return (*instructions[: at + 1], _EPOCH, *instructions[at + 1 :])
