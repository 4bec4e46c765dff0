"""The environment's content hash: what the image is, not what it is called.

Canonical JSON (sorted keys, no whitespace, UTF-8) of a versioned schema, sha256. Covers the
base image (ref, digest or Dockerfile text), docker steps, apt packages, env vars, features,
runtime user/workdir, installer, and the conda/pip dependencies (sorted: their order is not
semantic) or the locked packages. Channel order is kept: it is priority. Name, version and
description are never part of it; neither are mirrors (they change where, not what).
"""

from __future__ import annotations

import hashlib
from typing import Any

from layerkit.digest import HASH_SCHEMA, HashResult, digest
from layerkit.lock.model import Lock
from layerkit.render.renderplan import RenderPlan
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec.catalog import solve_glibc
from layerkit.spec.validate import Checked, effective_dependencies

# Bump when templates change what an image contains for the same inputs.
# 2: the env is made in its own installer image; search paths prepend to the base's.
TEMPLATE_VERSION = 2


def _base(checked: Checked, plan: RenderPlan) -> dict[str, Any]:
    spec = checked.resolved.spec
    b = spec.base
    out: dict[str, Any] = {}
    if plan.base_dockerfile is not None:
        out["dockerfile_sha256"] = hashlib.sha256(plan.base_dockerfile.encode()).hexdigest()
        if plan.user_context is not None:  # every file its COPY/ADD can read: (path, mode, sha256)
            out["context"] = plan.user_context.hash_part()
    elif checked.image is not None:
        out["devel"] = checked.image.devel
        out["runtime"] = checked.image.runtime
    elif b and b.image:
        out["image"] = b.image
    if b and b.digest:
        out["digest"] = b.digest
    if plan.locked_digests:  # only present when a lock pinned them: older hashes stay as they were
        out["locked_digests"] = dict(plan.locked_digests)
    return out


def _packages(checked: Checked, lock: Lock | None) -> dict[str, Any]:
    if lock is not None:
        return {
            "locked": sorted(
                [p.platform, p.manager, p.name, p.version, p.build, p.sha256 or p.md5 or p.url]
                for p in lock.packages
            )
        }
    conda = checked.resolved.spec.conda
    pip = P.section(conda.pip if conda else None)
    unlocked: dict[str, Any] = {
        # as conda reads them (no channels means defaults; nodefaults is no channel), before mirrors
        "channels": list(M.channels_of(conda)[0]),
        "dependencies": sorted(effective_dependencies(checked)),
        "pip": sorted(P.canonical(r) for r in pip.requirements),
    }
    if checked.cuda:  # the solve's __cuda (CONDA_OVERRIDE_CUDA): CUDA builds, not CPU ones
        unlocked["cuda"] = checked.cuda
    # The solve's __glibc (CONDA_OVERRIDE_GLIBC): the env stage no longer sees the base.
    unlocked["glibc"] = solve_glibc(checked.image)
    if pip.options != P.PipOptions():
        # They change what pip installs. The site's mirrors.pypi_index does not enter.
        o = pip.options
        unlocked["pip_options"] = {"index_url": o.index_url, "extra_index_urls": sorted(o.extra_index_urls),
                                   "find_links": sorted(o.find_links), "pre": o.pre}  # fmt: skip
    return unlocked


def compute(checked: Checked, plan: RenderPlan, lock: Lock | None = None) -> HashResult:
    spec = checked.resolved.spec
    system = {
        "schema": HASH_SCHEMA,
        "template": TEMPLATE_VERSION,
        "base": _base(checked, plan),
        "apt": sorted(plan.apt_base),
        "runtime_apt": sorted(plan.runtime_apt),
        "steps": [[s.instruction, s.text] for s in plan.base_steps],
        "user": [plan.user, plan.uid, plan.workdir],
        "platform": plan.platform,
        # false and unset mean the same image: only features that are on enter the hash
        "features": {k: v for k, v in plan.features.model_dump(mode="json", exclude_none=True).items() if v},
    }
    if plan.cuda_apt is not None:  # only where present: other flavours' hashes stay as they were
        system["cuda_apt"] = plan.cuda_apt.model_dump(mode="json")
    parts: dict[str, Any] = {
        "system": system,
        "final_steps": [[s.instruction, s.text] for s in plan.final_steps],
        "env": sorted([k, v] for k, v in (spec.env or {}).items()),
        "managed": plan.managed,
    }
    if plan.base_pip:  # only where present: other hashes stay as they were
        parts["base_pip"] = sorted(plan.base_pip)
    stages = {"base": digest(system)}
    if plan.env_install is not None:
        e = plan.env_install
        parts["packages"] = _packages(checked, lock)
        parts["installer"] = [e.installer, e.installer_version, e.installer_image]
        parts["image_pip"] = list(plan.image_pip)
        # The env stage is built on the installer image, not the base: its hash (the name of
        # its stage image and cache) does not move with the base.
        stages["env"] = digest(
            [TEMPLATE_VERSION, plan.platform, parts["packages"], parts["installer"], parts["image_pip"]]
        )
    return HashResult(digest(parts), parts, stages)
