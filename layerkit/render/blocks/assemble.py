"""Lay the blocks out as stages: base, env (when an environment is installed), runtime."""

from __future__ import annotations

from collections.abc import Sequence

from layerkit.render.blocks.dockerfile import Block, From, Instruction, Stage


def stages(
    base_from: tuple[Instruction, ...], runtime_ref: str | None, blocks: Sequence[Block]
) -> tuple[tuple[Stage, ...], tuple[Instruction, ...]]:
    """(stages, closing): each stage's instructions are its blocks', in `blocks` order.

    `base_from` starts the base stage (its FROM, after an inlined user Dockerfile). The runtime
    stage is `runtime_ref` set up like the base (Block.runtime), or the base itself; either
    way it then takes each block's final part. The closing instructions follow the labels,
    which name the hash of this very plan.
    """
    base = Stage((*base_from, *(i for b in blocks for i in b.base)))
    env = tuple(i for b in blocks for i in b.env)
    if runtime_ref is not None:
        setup: tuple[Instruction, ...] = (
            From(runtime_ref, "runtime"),
            *(i for b in blocks for i in b.runtime),
        )
    else:
        setup = (From("base", "runtime"),)
    runtime = Stage((*setup, *(i for b in blocks for i in b.final)))
    closing = tuple(i for b in blocks for i in b.closing)
    return (base, *((Stage(env),) if env else ()), runtime), closing
