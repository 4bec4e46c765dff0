"""`layerkit.api`'s `verify`: build an environment again from scratch and compare it with the
image `build` pushed (build/verify.py). Import it from layerkit.api."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.lock.model import Lock
from layerkit.pipeline import render, render_platforms

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions
    from layerkit.build.progress import Progress
    from layerkit.build.verify import VerifyResult


def verify(
    spec: Path,
    lock: Path | Lock | None = None,
    platform: str | None = None,
    auto_lock: bool = True,
    *,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Build the image again with no cache (pushed to ``<repo>-verify:<hash>``) and compare its
    manifest digest with the one its hash tag names in the registry (what `build` pushed);
    ``result.findings`` name the first differing layer and file of each platform that differs.
    A spec with several platforms and no ``platform``: every platform, and the image index.
    Raises EnvironmentFailure when nothing is recorded or the engine cannot build reproducibly."""
    from layerkit.build.builder import BuildOptions
    from layerkit.build.progress import Progress
    from layerkit.build.verify import verify as run_verify

    renders = (
        (render(spec, lock, platform, auto_lock),) if platform else render_platforms(spec, lock, auto_lock)
    )
    if on_warning:  # the platforms share the spec's and the lock's warnings: each once
        for w in dict.fromkeys(w for r in renders for w in r.warnings):
            on_warning(w)
    opts = options or BuildOptions()
    prog = progress or Progress(opts.progress)
    try:
        return run_verify(renders, opts, prog, index=platform is None and len(renders) > 1)
    finally:
        prog.close()
