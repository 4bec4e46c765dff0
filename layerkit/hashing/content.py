"""The environment's content hash: the build definition itself, normalised.

The hash is the sha256 of the canonical JSON of what a build reads: the Dockerfile and every
context file, as rendered from the canonical inputs (canonical.py: no name, version,
description or mirrors) and then normalised (normalise.py: no comments, credentials or
layerkit's own labels, which name this very hash). So any change of a template, a block or
a shipped script that changes what is built changes the hash, with no hand-kept list of
fields to forget, and what must not count cannot. The user's files a base Dockerfile copies
enter by (path, mode, sha256).

Each stage image (base, env) is named by the hash of its own part: its instructions, the
context files it copies and the hashes of the stages it builds on. The env stage starts
from the installer image, not the base, so a base-only change does not move it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from layerkit.digest import HASH_SCHEMA, HashResult, digest
from layerkit.hashing import normalise
from layerkit.hashing.canonical import canonical_checked, canonical_lock
from layerkit.lock.model import Lock
from layerkit.render.blocks.dockerfile import Copy, From, Raw, Run, Stage
from layerkit.render.renderplan import RenderPlan, render_plan
from layerkit.spec.validate import Checked

STAGES = ("base", "env")  # the stage images a build pushes and caches under their hash
_BLANK = HashResult("", {}, {})  # labels name the hash: formatted blank, as is the version


@dataclass(frozen=True)
class Definition:
    """The normalised build definition: what the hash is of."""

    dockerfile: str
    context: dict[str, str]  # name -> normalised content
    user_context: list[list[object]]  # (path, mode, sha256) of the files a base Dockerfile copies

    def to_json(self) -> dict[str, object]:
        return {"dockerfile": self.dockerfile, "context": self.context, "user_context": self.user_context}


def definition(checked: Checked, platform: str, lock: Lock | None = None) -> Definition:
    return _definition(checked, platform, lock)[1]


def _definition(checked: Checked, platform: str, lock: Lock | None) -> tuple[RenderPlan, Definition]:
    """(canonical plan, its normalised build definition)."""
    canon = canonical_checked(checked)
    plan = render_plan(canon, canonical_lock(lock, checked, canon), platform).model_copy(
        update={"sources": ()}
    )
    secrets = _secrets(plan)
    return plan, Definition(
        dockerfile=normalise.dockerfile(render_dockerfile(plan, _BLANK, version=""), secrets),
        context={n: normalise.context_file(n, c, secrets) for n, c in plan.context_files},
        user_context=plan.user_context.hash_part() if plan.user_context else [],
    )


def compute(checked: Checked, plan: RenderPlan, lock: Lock | None = None) -> HashResult:
    canon, d = _definition(checked, plan.platform, lock)
    parts: dict[str, Any] = {
        "schema": HASH_SCHEMA,
        "dockerfile": d.dockerfile,
        "context": {n: _sha(c) for n, c in sorted(d.context.items())},
        "user_context": d.user_context,
    }
    return HashResult(digest(parts), parts, _stage_hashes(canon, parts))


def _stage_hashes(plan: RenderPlan, parts: dict[str, Any]) -> dict[str, str]:
    """Each stage's own hash, in Dockerfile order (a stage only builds on earlier ones)."""
    secrets = _secrets(plan)
    done: dict[str, str] = {}
    for stage in plan.stages:
        name = _alias(stage)
        one = plan.model_copy(update={"stages": (stage,), "closing": ()})
        reads = _reads(stage)
        done[name] = digest(
            {
                "schema": HASH_SCHEMA,
                "dockerfile": normalise.dockerfile(render_dockerfile(one, _BLANK, version=""), secrets),
                "context": {n: h for n, h in parts["context"].items() if reads is None or n in reads},
                "user_context": parts["user_context"]
                if any(isinstance(i, Raw) for i in stage.instructions)
                else [],
                "after": {s: done[s] for s in sorted(_after(stage) & done.keys()) if s != name},
            }
        )
    return {k: v for k, v in done.items() if k in STAGES}


def _alias(stage: Stage) -> str:
    return next(i.alias for i in stage.instructions if isinstance(i, From))


def _reads(stage: Stage) -> set[str] | None:
    """The context files a stage's COPYs read (None: all of them, to be safe)."""
    names = {s for i in stage.instructions if isinstance(i, Copy) and i.from_stage is None for s in i.sources}
    return None if any(any(c in n for c in "*?[") for n in names) else names


def _after(stage: Stage) -> set[str]:
    """The stages this one builds on: FROM, COPY --from, RUN --mount=from."""
    out: set[str] = set()
    for i in stage.instructions:
        if isinstance(i, From):
            out.add(i.ref)
        elif isinstance(i, Copy) and i.from_stage:
            out.add(i.from_stage)
        elif isinstance(i, Run):
            out |= {v for m in i.mounts for k, v in m.options if k == "from"}
    return out


def render_dockerfile(plan: RenderPlan, h: HashResult, version: str) -> str:
    """The template, imported when a hash is computed: `check`'s fresh path needs no Jinja."""
    from layerkit.render.jinja import render_dockerfile as render

    return render(plan, h, version)


def _secrets(plan: RenderPlan) -> tuple[str, ...]:
    e = plan.env_install
    return (*e.secrets, *e.pip_secrets) if e else ()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
