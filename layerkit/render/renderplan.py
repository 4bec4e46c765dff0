"""The render plan: every decision about the Dockerfile, as typed data.

The Dockerfile itself is laid out here too, by the building blocks of render/blocks/, as
typed instructions per stage: templates only print them. Every string here is either
validated (spec/values.py) or already quoted for its Dockerfile position, so no spec value
can start an instruction.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from layerkit.errors import SpecError
from layerkit.lock.model import Lock
from layerkit.render import envinstall
from layerkit.render.blocks import basepip, files, system
from layerkit.render.blocks.assemble import stages
from layerkit.render.blocks.cuda import cuda
from layerkit.render.blocks.dockerfile import Block, Comment, From, Instruction, Raw, Stage
from layerkit.render.blocks.installer import ENV_PREFIX, installer
from layerkit.render.blocks.mpi import MPI_BIN
from layerkit.render.blocks.mpi import mpi as mpi_block
from layerkit.render.cuda_apt import CudaAptPlan, cuda_apt_plan
from layerkit.render.envinstall import EnvInstall
from layerkit.render.envvars import env_values
from layerkit.render.usercontext import UserContext
from layerkit.render.userfile import user_base
from layerkit.spec import values as V
from layerkit.spec.catalog import load_catalog
from layerkit.spec.imageref import has_digest, mirror, with_digest
from layerkit.spec.implied import DEFAULT_FLAVOUR
from layerkit.spec.models import Features, Runtime
from layerkit.spec.validate import Checked, effective_dependencies


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CommandStep(_Model):
    instruction: Literal["RUN"]
    text: str  # shell line (validated) or exec-form JSON array


class RenderPlan(_Model):
    managed: bool
    sources: tuple[str, ...]  # spec layers, for the header comment
    base_ref: str | None  # FROM of the base stage; None when a base Dockerfile is inlined
    base_dockerfile: str | None  # the user's Dockerfile, its last stage named base_alias
    runtime_ref: str | None  # FROM of the runtime stage; None means FROM base
    # Digests the lock recorded for unpinned base refs (already in base_ref/runtime_ref);
    # the hash takes them so a moved base image is a new environment.
    locked_digests: tuple[tuple[str, str], ...] = ()
    apt_base: tuple[str, ...]
    runtime_apt: tuple[str, ...]
    user: str
    uid: int
    workdir: str
    base_steps: tuple[CommandStep, ...]
    final_steps: tuple[CommandStep, ...]
    env_install: EnvInstall | None
    # (NAME, value), sorted: values are quoted, or prepend to the base's (`${PATH:-...}`).
    env: tuple[tuple[str, str], ...]
    platform: str
    features: Features
    context_files: tuple[tuple[str, str], ...]  # (name, content), sorted
    image_pip: tuple[str, ...]  # pip packages the flavour brings (ONNX Runtime)
    # user_managed with pip packages: installed on the base's Python (render/blocks/basepip.py)
    cuda_apt: CudaAptPlan | None = None  # CUDA installed in the base stage (render/cuda_apt.py)
    user_context: UserContext | None = None  # files the base Dockerfile's COPY/ADD read
    # The Dockerfile, as the building blocks (render/blocks/) laid it out: the template prints
    # these stages, then the labels (which name this plan's hash), then `closing`.
    stages: tuple[Stage, ...]
    closing: tuple[Instruction, ...]


def _steps(checked: Checked, stage: str) -> tuple[CommandStep, ...]:
    out = []
    for step in checked.resolved.spec.steps or ():
        if (step.stage or "base") != stage:
            continue
        text = step.run if isinstance(step.run, str) else json.dumps(list(step.run))
        if isinstance(step.run, str) and V.shell_line(step.run):
            raise SpecError(f"unsafe step: {V.shell_line(step.run)}")
        out.append(CommandStep(instruction="RUN", text=text))
    return tuple(out)


def render_plan(checked: Checked, lock: Lock | None = None, platform: str | None = None) -> RenderPlan:
    """Decide everything the Dockerfile needs from a checked spec and an optional lock."""
    r = checked.resolved
    spec = r.spec
    image = checked.image
    base = spec.base
    feats = spec.features or Features()
    rt = spec.runtime or Runtime()
    plats = spec.platforms or ("linux-64",)
    platform = platform or plats[0]
    if platform not in plats:
        raise SpecError(f"platform {platform} is not in the spec's platforms {list(plats)}")
    hub_mirror = spec.mirrors.base_registry if spec.mirrors else None
    digest = base.digest if base else None
    base_dockerfile: tuple[str, str] | None = None
    user_context = None
    if base and (base.dockerfile or base.dockerfile_file):
        text, alias, user_context = user_base(checked)
        base_dockerfile = (text, alias)
        base_ref, runtime_ref = None, None
    elif base and base.image and image is None:
        base_ref, runtime_ref = with_digest(mirror(base.image, hub_mirror), digest), None
    else:
        image = image or load_catalog().get(DEFAULT_FLAVOUR)
        assert image is not None
        base_ref = with_digest(mirror(image.devel, hub_mirror), digest)
        runtime_ref = None if image.runtime == image.devel else mirror(image.runtime, hub_mirror)
    locked: list[tuple[str, str]] = []
    if lock is not None:
        # The lock pins what the spec leaves floating; a digest in the spec wins.
        if base_ref and not has_digest(base_ref) and (d := lock.base_digest(base_ref)):
            locked.append(("base", d))
            base_ref = f"{base_ref}@{d}"
        if runtime_ref and not has_digest(runtime_ref) and (d := lock.base_digest(runtime_ref)):
            locked.append(("runtime", d))
            runtime_ref = f"{runtime_ref}@{d}"
    managed = not spec.user_managed
    mpi = image.mpi if image and image.mpi and image.mpi.source else None
    mpi_part = mpi_block(mpi, runtime_image=runtime_ref is not None)
    # Every block's apt packages in one RUN per image; MPI's build tools on the base only.
    needs = (
        Block(apt=(*(spec.apt or ()), *(image.apt if image else ()))),
        system.fuse(bool(feats.datasets)),
        mpi_part,
    )
    runtime_apt = {p for b in needs for p in b.apt}
    apt = runtime_apt | {p for b in needs for p in b.build_apt}
    env_install = envinstall.env_install(checked, lock, platform) if managed else None
    base_pip = basepip.requirements(checked)
    fronts: dict[str, list[str]] = {}
    if managed or base_pip is not None:
        fronts["PATH"] = [f"{ENV_PREFIX}/bin"]
    if mpi:
        fronts.setdefault("PATH", []).append(MPI_BIN[mpi.kind])
        fronts["LD_LIBRARY_PATH"] = ["/opt/mpi/lib"]
    # Catalog search paths join layerkit's in front of the base's; the spec's own values replace.
    env = tuple(sorted(env_values(dict(image.env) if image else {}, fronts, spec.env or {}).items()))
    image_pip = tuple(sorted(image.pip)) if image and managed else ()
    deps = effective_dependencies(checked) if env_install is not None and lock is None else ()
    context = files.context_files(checked, env_install, lock, platform, bool(image_pip), deps)
    if base_pip is not None:
        context.append(basepip.context_file(base_pip))
    cuda_plan = cuda_apt_plan(image, platform) if base_dockerfile is None else None
    user, uid, workdir = rt.user or "app", rt.uid or 1000, rt.workdir or "/app"
    base_steps, final_steps = _steps(checked, "base"), _steps(checked, "final")
    blocks = (
        cuda(cuda_plan),
        system.shell_and_locale(managed),
        system.apt(
            tuple(sorted(apt)), tuple(sorted(runtime_apt)) if runtime_ref else (), any("=" in p for p in apt)
        ),
        mpi_part,
        system.user(user, uid, workdir),
        installer(env_install, platform, image_pip),
        basepip.base_pip(checked, base_pip, spec.mirrors.pypi_index if spec.mirrors else None),
        system.environment(env),
        system.steps((s.text for s in base_steps), (s.text for s in final_steps)),
    )
    laid_out, closing = stages(_base_from(base_dockerfile, base_ref), runtime_ref, blocks)
    return RenderPlan(
        managed=managed,
        sources=tuple(_rel_sources(checked)),
        base_ref=base_ref,
        base_dockerfile=base_dockerfile[0] if base_dockerfile else None,
        runtime_ref=runtime_ref,
        locked_digests=tuple(locked),
        apt_base=tuple(sorted(apt)),
        runtime_apt=tuple(sorted(runtime_apt)) if runtime_ref else (),
        user=user,
        uid=uid,
        workdir=workdir,
        base_steps=base_steps,
        final_steps=final_steps,
        env_install=env_install,
        env=env,
        platform=platform,
        features=feats,
        context_files=tuple(sorted(context)),
        image_pip=image_pip,
        cuda_apt=cuda_plan,
        user_context=user_context,
        stages=laid_out,
        closing=closing,
    )


def _base_from(base_dockerfile: tuple[str, str] | None, base_ref: str | None) -> tuple[Instruction, ...]:
    """The base stage's start: its image, or the user's Dockerfile whose last stage it takes."""
    if base_dockerfile is not None:
        text, alias = base_dockerfile
        return Comment("--- base: the user's Dockerfile ---"), Raw(text), From(alias, "base")
    assert base_ref is not None  # render_plan sets one of the two
    return (From(base_ref, "base"),)


def _rel_sources(checked: Checked) -> list[str]:
    root = checked.resolved.root
    out = []
    for layer in checked.resolved.layers:
        if layer.path is None or root.path is None:
            out.append(layer.source)
            continue
        try:
            out.append(str(layer.path.resolve().relative_to(root.path.resolve().parent)))
        except ValueError:
            out.append(layer.path.name)
    return out
