"""The inference image's hash: the environment's, and what the inference stage adds on top.

Covers the environment hash (so every env input), the entry script, the source tree (path,
mode and sha256 of every file its ignore file keeps), the models (name, version, files), the
stage's instructions as rendered and its context files (nginx's config, the entrypoint). The
environment's own hash and stages do not see any of it: a new score.py or model is a new
inference image on the same environment image layers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from layerkit.digest import HASH_SCHEMA, HashResult, digest
from layerkit.render.inference import InferencePlan

# Bump when the inference stage changes what it contains for the same inputs.
INFERENCE_TEMPLATE_VERSION = 1


def compute(env: HashResult, plan: InferencePlan) -> HashResult:
    parts: dict[str, Any] = {
        "schema": HASH_SCHEMA,
        "template": INFERENCE_TEMPLATE_VERSION,
        "env": env.hash,
        "entry_script": plan.entry_script,
        "source": plan.source.hash_part(),
        "models": [[m.name, m.version, m.files.hash_part()] for m in plan.models],
        "stage": [repr(i) for i in plan.stage.instructions],
        "files": sorted(
            [name, hashlib.sha256(text.encode()).hexdigest()] for name, text in plan.context_files
        ),
    }
    # The shared stages are the environment's: the inference image reuses their images.
    return HashResult(digest(parts), parts, dict(env.stages))
