"""Which of a spec's platforms `run` and `serve` use: the one the engine that runs the
container runs natively (asked through the Engine API), else this machine's."""

from __future__ import annotations

from collections.abc import Sequence

from layerkit.errors import DaemonError, SpecError


def engine_platform(addr: str | None) -> str | None:
    """The conda platform of the engine that runs images built at `addr` (its Docker engine,
    else $DOCKER_HOST's); this machine's when that engine does not answer (running then
    fails with its own message); None when the architecture is one layerkit does not build."""
    from layerkit.build.engine import Engine
    from layerkit.build.transport import parse_address
    from layerkit.spec.ociplatform import host

    arch = None
    try:
        engine = Engine(parse_address(addr).engine_host)
        try:
            arch = engine.arch()
        finally:
            engine.close()
    except (DaemonError, SpecError):
        arch = None
    return host(arch)


def run_platform(platforms: Sequence[str], addr: str | None, what: str) -> str:
    """The host's platform among the spec's; refused (SpecError) when it is not one of them."""
    from layerkit.spec.ociplatform import pick

    return pick(platforms, engine_platform(addr), what)
