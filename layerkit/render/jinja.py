"""Format a RenderPlan with the Jinja templates (StrictUndefined: a missing value is a bug)."""

from __future__ import annotations

import json
from functools import cache

import jinja2

from layerkit import __version__
from layerkit.digest import HASH_SCHEMA, HashResult
from layerkit.render.blocks.dockerfile import Label
from layerkit.render.envvars import quote
from layerkit.render.plan import RenderPlan


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates cached on disk (keyed by source checksum): saves ~30 ms a run."""
    from layerkit.resources import cache_dir

    root = cache_dir() / "jinja"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(root))


@cache
def _env() -> jinja2.Environment:
    from layerkit.resources import data_dir

    templates = data_dir("templates")

    def load(name: str) -> str:
        return (templates / name).read_text(encoding="utf-8")

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Dockerfile, not HTML: values are validated/quoted in the plan
        keep_trailing_newline=True,
    )


def labels(plan: RenderPlan, h: HashResult) -> Label:
    items = {
        "io.layerkit.hash": h.hash,
        "io.layerkit.hash-schema": str(HASH_SCHEMA),
        "io.layerkit.sources": ",".join(plan.sources),
        "io.layerkit.version": __version__,
    }
    items.update({f"io.layerkit.stage.{k}": v for k, v in h.stages.items()})
    return Label(tuple(sorted((k, quote(v)) for k, v in items.items())))


def render_dockerfile(plan: RenderPlan, h: HashResult) -> str:
    text = (
        _env()
        .get_template("Dockerfile.j2")
        .render(
            plan=plan,
            version=__version__,
            sources=json.dumps(list(plan.sources)),
            hash=h.hash,
            hash_schema=HASH_SCHEMA,
            labels=labels(plan, h),
        )
    )
    return text.rstrip("\n") + "\n"
