"""Format a RenderPlan with the Jinja templates (StrictUndefined: a missing value is a bug).

The template comes precompiled inside the package (layerkit/precompiled.py) or compiles in
memory once a process: nothing compiled is read from a user-writable cache, where another
writer could plant code that runs with our rights.
"""

from __future__ import annotations

import json
from functools import cache

import jinja2

from layerkit import __version__
from layerkit.digest import HASH_SCHEMA, HashResult
from layerkit.render.blocks.dockerfile import Label, Stage
from layerkit.render.envvars import quote
from layerkit.render.renderplan import RenderPlan


@cache
def _env() -> jinja2.Environment:
    from layerkit.resources import data_dir

    templates = data_dir("templates")

    def load(name: str) -> str:
        return (templates / name).read_text(encoding="utf-8")

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Dockerfile, not HTML: values are validated/quoted in the plan
        keep_trailing_newline=True,
    )


@cache
def template() -> jinja2.Template:
    """Dockerfile.j2: the shipped compiled module when it matches the template's source and
    this Jinja (layerkit/precompiled.py), else compiled in memory, once a process."""
    from layerkit import precompiled
    from layerkit.resources import data_dir

    env = _env()
    source = (data_dir("templates") / precompiled.TEMPLATE).read_text(encoding="utf-8")
    return precompiled.compiled_template(env, source) or env.get_template(precompiled.TEMPLATE)


def labels(plan: RenderPlan, h: HashResult, version: str = __version__) -> Label:
    items = {
        "io.layerkit.hash": h.hash,
        "io.layerkit.hash-schema": str(HASH_SCHEMA),
        "io.layerkit.sources": ",".join(plan.sources),
        "io.layerkit.version": version,
    }
    items.update({f"io.layerkit.stage.{k}": v for k, v in h.stages.items()})
    return Label(tuple(sorted((k, quote(v)) for k, v in items.items())))


def render_dockerfile(
    plan: RenderPlan, h: HashResult, version: str = __version__, extra_stages: tuple[Stage, ...] = ()
) -> str:
    """The Dockerfile; hashing/ formats it too, with a blank hash and version (what names it).
    `extra_stages` follow the environment's (the inference image's stage)."""
    text = template().render(
        extra_stages=extra_stages,
        plan=plan,
        version=version,
        sources=json.dumps(list(plan.sources)),
        hash=h.hash,
        hash_schema=HASH_SCHEMA,
        labels=labels(plan, h, version),
    )
    return text.rstrip("\n") + "\n"
