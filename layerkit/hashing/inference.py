"""The inference image's hash: the environment's, and the build definition of the stage on top.

As the environment hash (hashing/content.py), it is the hash of what the build reads: the
inference stage as rendered (the Dockerfile text, normalised: no comments, its own label
blank) and its context files (nginx's config, the entrypoint script), plus the files it
copies from the user by (path, mode, sha256): the source tree its ignore file keeps and the
models. And the environment hash, which stands for everything below. The environment's own
hash and stages do not see any of it: a new score.py or model is a new inference image on
the same environment image layers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from layerkit.digest import HASH_SCHEMA, HashResult, digest
from layerkit.hashing import normalise
from layerkit.render.inference import InferencePlan
from layerkit.render.renderplan import RenderPlan

_BLANK = HashResult("", {}, {})  # the environment's labels, formatted blank: only the stage counts


def stage_text(env_plan: RenderPlan, plan: InferencePlan) -> str:
    """The inference stage alone, normalised as the environment's Dockerfile is."""
    from layerkit.render.jinja import render_dockerfile

    bare = env_plan.model_copy(update={"stages": (), "closing": (), "sources": ()})
    return normalise.dockerfile(render_dockerfile(bare, _BLANK, version="", extra_stages=(plan.stage,)), ())


def compute(env: HashResult, env_plan: RenderPlan, plan: InferencePlan) -> HashResult:
    parts: dict[str, Any] = {
        "schema": HASH_SCHEMA,
        "env": env.hash,
        "dockerfile": stage_text(env_plan, plan),
        "context": {
            name: hashlib.sha256(normalise.context_file(name, text, ()).encode()).hexdigest()
            for name, text in sorted(plan.context_files)
        },
        "user_context": {
            "source": plan.source.hash_part(),
            "models": [[m.name, m.version, m.files.hash_part()] for m in plan.models],
        },
    }
    # The shared stages are the environment's: the inference image reuses their images.
    return HashResult(digest(parts), parts, dict(env.stages))
