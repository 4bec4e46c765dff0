"""The render plan: every decision about the Dockerfile, as typed data.

Templates only format a plan. Every string here is either validated (spec/values.py) or
already quoted for its Dockerfile position, so no spec value can start an instruction.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from layerkit.errors import SpecError
from layerkit.lock.model import Lock
from layerkit.render import envinstall
from layerkit.render.cuda_apt import CudaAptPlan, cuda_apt_plan
from layerkit.render.envinstall import EnvInstall
from layerkit.render.envvars import env_values
from layerkit.render.usercontext import UserContext
from layerkit.render.userfile import user_base
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec import values as V
from layerkit.spec.catalog import load_catalog, solve_glibc
from layerkit.spec.imageref import has_digest, mirror, with_digest
from layerkit.spec.implied import DEFAULT_FLAVOUR, PIP, adds_pip
from layerkit.spec.models import Features, Runtime
from layerkit.spec.validate import Checked

ENV_PREFIX = "/opt/env"
MPI_PREFIX = "/opt/mpi"
FETCH_INSTALLER = "fetch_installer.py"
# PEP 600 hook, on PYTHONPATH for the env stage's pip: which manylinux wheels run on the base.
MANYLINUX_FILE = "_manylinux.py"
MANYLINUX = """\
# Written by layerkit. The env is made in the installer image but runs on the base image:
# pip asks this module (PEP 600) which manylinux wheels run, and the base's glibc decides.
BASE_GLIBC = ({major}, {minor})


def manylinux_compatible(tag_major, tag_minor, tag_arch):
    return (tag_major, tag_minor) <= BASE_GLIBC
"""
FUSE_APT = ("fuse", "libfuse-dev")
MPI_BIN = {
    "openmpi": "/opt/mpi/bin",
    "intelmpi": "/opt/mpi/compilers_and_libraries_2018.3.222/linux/mpi/intel64/bin",
}
MPI_BUILD_APT = {
    "openmpi": ("build-essential", "bzip2", "ca-certificates", "wget"),
    "intelmpi": ("ca-certificates", "cpio", "wget"),
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CommandStep(_Model):
    instruction: Literal["RUN"]
    text: str  # shell line (validated) or exec-form JSON array


class CopyStep(_Model):
    """A COPY of layerkit's: context files, or a path of stage ``from_stage``, to ``dest``."""

    sources: tuple[str, ...]
    dest: str
    from_stage: str | None = None
    # --link: the layer is made on its own and laid over the layers below, so it survives a
    # change there (the same blob, not re-copied). A linked copy writes dest's parent folders
    # itself (root, 0755) and cannot follow a symlink among them: so only into /opt.
    link: bool


class RenderPlan(_Model):
    managed: bool
    sources: tuple[str, ...]  # spec layers, for the header comment
    base_ref: str | None  # FROM of the base stage; None when a base Dockerfile is inlined
    base_dockerfile: str | None  # the user's Dockerfile, its last stage named base_alias
    base_alias: str | None
    runtime_ref: str | None  # FROM of the runtime stage; None means FROM base
    # Digests the lock recorded for unpinned base refs (already in base_ref/runtime_ref);
    # the hash takes them so a moved base image is a new environment.
    locked_digests: tuple[tuple[str, str], ...] = ()
    distro: str | None
    apt_base: tuple[str, ...]
    runtime_apt: tuple[str, ...]
    apt_pinned: bool  # pins may move packages the base image already holds (CUDA images)
    mpi_install: str | None  # "openmpi" | "intelmpi" when built in the image
    mpi_url: str | None
    mpi_sha256: str | None
    mpi_version: str | None
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
    # The env stage's COPYs (_env_copies): conda/micromamba's fetch_installer.py, then the
    # installer's own files, then the lock and requirements.
    installer_copy: CopyStep | None
    env_copies: tuple[CopyStep, ...]
    env_copy: CopyStep | None  # the finished prefix into the runtime stage
    mpi_copy: CopyStep | None  # /opt/mpi, built in the base stage, into a runtime image
    cuda_apt: CudaAptPlan | None = None  # CUDA installed in the base stage (render/cuda_apt.py)
    user_context: UserContext | None = None  # files the base Dockerfile's COPY/ADD read


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


def effective_dependencies(checked: Checked) -> tuple[str, ...]:
    """Conda dependencies as installed (spec/implied.py): the spec's in the form solvers read
    (matchspec.solver_form), plus `pip` when conda would add it and the injected Python."""
    conda = checked.resolved.spec.conda
    deps = [M.solver_form(d) for d in conda.dependencies or ()] if conda else []
    if adds_pip(conda):
        deps.append(PIP)
    if checked.injected_python:
        deps.append(checked.injected_python)
    return tuple(sorted(deps))


def _context_files(
    checked: Checked, env: EnvInstall | None, lock: Lock | None, platform: str, image_pip: bool
) -> list[tuple[str, str]]:
    spec = checked.resolved.spec
    files: list[tuple[str, str]] = []
    if env is None:
        return files
    if lock is not None:
        files.append((env.conda_file, lock.explicit(platform)))
        if env.pip_file:
            creds = "".join(f"{ln}\n" for ln in envinstall.pip_credential_lines(checked))
            files.append((env.pip_file, creds + lock.pip_requirements(platform)))
    else:
        conda, mirrors = spec.conda, spec.mirrors
        channels = list(M.resolved_channels(conda, mirrors))
        doc = {
            # nodefaults: conda env create would append its .condarc channels otherwise
            "channels": channels + ([] if env.installer == "rattler" else [M.NODEFAULTS]),
            "dependencies": [M.qualified(d, mirrors) for d in effective_dependencies(checked)],
        }
        # JSON is valid YAML and needs no escaping decisions of our own.
        files.append(("environment.yml", json.dumps(doc, indent=2, sort_keys=True) + "\n"))
        if env.pip_file and conda and conda.pip:
            pip = P.section(conda.pip)
            _hashes_all_or_none(checked, pip.requirements)
            # Options first, as lines: pip expands ${NAME} credentials in files only.
            lines = [*pip.options.lines(), *sorted(pip.requirements)]
            files.append((env.pip_file, "\n".join(lines) + "\n"))
    if env.pip_file or image_pip:
        major, minor = (int(x) for x in solve_glibc(checked.image).split(".")[:2])
        files.append((MANYLINUX_FILE, MANYLINUX.format(major=major, minor=minor)))
    from layerkit.resources import data_dir

    scripts = [n for n in _env_scripts(env, image_pip) if n != MANYLINUX_FILE]
    if env.installer != "rattler":
        scripts.append(FETCH_INSTALLER)
    files += [(name, (data_dir("templates") / name).read_text(encoding="utf-8")) for name in scripts]
    return files


def _env_scripts(env: EnvInstall, image_pip: bool) -> tuple[str, ...]:
    """The env stage's own files: the same for every lock of a layerkit version and base."""
    names = ["install_env.py"] if env.installer == "rattler" else []
    if env.pip_file or image_pip:
        names.append(MANYLINUX_FILE)
    if env.pip_secrets:
        names.append("expand_secrets.py")
    return tuple(sorted(names))


def _env_copies(
    env: EnvInstall | None, image_pip: bool, mpi_to_runtime: bool
) -> tuple[CopyStep | None, tuple[CopyStep, ...], CopyStep | None, CopyStep | None]:
    """(installer_copy, env_copies, env_copy, mpi_copy) of the RenderPlan.

    The installer's own files come before the lock, so a lock change re-copies only the lock.
    Those copies go to the env stage's work folder under /tmp and are not linked: a linked
    copy would re-create /tmp as 0755 (losing its sticky bit), and the install RUN after them
    re-runs on any change below anyway. The copies into /opt are linked: a base change then
    re-copies neither the environment nor MPI.
    """
    mpi = CopyStep(sources=(MPI_PREFIX,), dest=MPI_PREFIX, from_stage="base", link=True)
    if env is None:
        return None, (), None, mpi if mpi_to_runtime else None
    fetch = (
        CopyStep(sources=(FETCH_INSTALLER,), dest="./", link=False) if env.installer != "rattler" else None
    )
    scripts = _env_scripts(env, image_pip)
    inputs = (env.conda_file, *((env.pip_file,) if env.pip_file else ()))
    copies = tuple(CopyStep(sources=names, dest="./", link=False) for names in (scripts, inputs) if names)
    prefix = CopyStep(sources=(ENV_PREFIX,), dest=ENV_PREFIX, from_stage="env", link=True)
    return fetch, copies, prefix, mpi if mpi_to_runtime else None


def _hashes_all_or_none(checked: Checked, requirements: tuple[str, ...]) -> None:
    """pip turns on hash-checking for a whole file when one line has --hash, and then refuses
    every requirement without one; a lock carries a hash for every package instead."""
    hashed = [bool(P.split_hashes(r)[1]) for r in requirements]
    if any(hashed) and not all(hashed):
        raise SpecError(
            "some pip lines have --hash and some do not: pip checks hashes for all of a file's "
            "requirements or none; run `layerkit lock` (the lock keeps these hashes and has one for "
            "every package), or give every line its --hash",
            checked.resolved.loc(("conda", "pip")),
        )


def build_plan(checked: Checked, lock: Lock | None = None, platform: str | None = None) -> RenderPlan:
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
    runtime_apt = set(spec.apt or ())
    if feats.datasets:
        runtime_apt.update(FUSE_APT)
    if image:
        runtime_apt.update(image.apt)
    apt = set(runtime_apt)
    mpi = image.mpi if image and image.mpi and image.mpi.source else None
    if mpi:
        apt.update(MPI_BUILD_APT[mpi.kind])
    env_install = envinstall.env_install(checked, lock, platform) if managed else None
    fronts: dict[str, list[str]] = {}
    if managed:
        fronts["PATH"] = [f"{ENV_PREFIX}/bin"]
    if mpi:
        fronts.setdefault("PATH", []).append(MPI_BIN[mpi.kind])
        fronts["LD_LIBRARY_PATH"] = ["/opt/mpi/lib"]
    # Catalog search paths join layerkit's in front of the base's; the spec's own values replace.
    env = env_values(dict(image.env) if image else {}, fronts, spec.env or {})
    image_pip = tuple(sorted(image.pip)) if image and managed else ()
    files = _context_files(checked, env_install, lock, platform, bool(image_pip))
    installer_copy, env_copies, env_copy, mpi_copy = _env_copies(
        env_install, bool(image_pip), bool(mpi and runtime_ref)
    )
    return RenderPlan(
        managed=managed,
        sources=tuple(_rel_sources(checked)),
        base_ref=base_ref,
        base_dockerfile=base_dockerfile[0] if base_dockerfile else None,
        base_alias=base_dockerfile[1] if base_dockerfile else None,
        runtime_ref=runtime_ref,
        locked_digests=tuple(locked),
        distro=image.distro.tag if image else None,
        apt_base=tuple(sorted(apt)),
        apt_pinned=any("=" in p for p in apt),
        runtime_apt=tuple(sorted(runtime_apt)) if runtime_ref else (),
        mpi_install=mpi.kind if mpi else None,
        mpi_url=mpi.source.url if mpi and mpi.source else None,
        mpi_sha256=mpi.source.sha256 if mpi and mpi.source else None,
        mpi_version=mpi.version if mpi else None,
        user=rt.user or "app",
        uid=rt.uid or 1000,
        workdir=rt.workdir or "/app",
        base_steps=_steps(checked, "base"),
        final_steps=_steps(checked, "final"),
        env_install=env_install,
        env=tuple(sorted(env.items())),
        platform=platform,
        features=feats,
        context_files=tuple(sorted(files)),
        image_pip=image_pip,
        installer_copy=installer_copy,
        env_copies=env_copies,
        env_copy=env_copy,
        mpi_copy=mpi_copy,
        cuda_apt=cuda_apt_plan(image) if base_dockerfile is None else None,
        user_context=user_context,
    )


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
