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
from layerkit.render.userfile import user_base
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec import values as V
from layerkit.spec.catalog import load_catalog
from layerkit.spec.imageref import parse_image_ref
from layerkit.spec.models import Features, Installer, Runtime
from layerkit.spec.validate import DEFAULT_FLAVOUR, Checked

ENV_PREFIX = "/opt/env"
FUSE_APT = ("fuse", "libfuse-dev")
INSTALLER_APT = {
    "conda": ("bzip2", "ca-certificates", "wget"),
    "micromamba": ("bzip2", "ca-certificates", "wget"),
}
_CA_BUNDLE = "test -s /etc/ssl/certs/ca-certificates.crt"
INSTALLER_PROBE = {
    "rattler": f"python3 -c 'import ensurepip, venv' 2>/dev/null && {_CA_BUNDLE}",
    "conda": f"command -v wget >/dev/null && command -v bzip2 >/dev/null && {_CA_BUNDLE}",
    "micromamba": f"command -v wget >/dev/null && command -v bzip2 >/dev/null && {_CA_BUNDLE}",
}
RATTLER_APT = ("ca-certificates", "python3", "python3-venv")
RATTLER_VERSION = "0.28.0"
RATTLER_PACKAGE_CACHE = "/var/cache/layerkit/rattler"
OLD_SYSTEM_PYTHON = frozenset({"ubuntu16.04", "ubuntu18.04", "debian9", "debian10"})
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


class Download(_Model):
    url: str
    check_tool: Literal["sha256sum", "md5sum"]
    digest: str


class EnvInstall(_Model):
    """How the env stage creates /opt/env."""

    installer: Installer
    installer_download: Download | None  # Miniconda/micromamba; None for rattler
    installer_version: str
    locked: bool
    conda_file: str  # context file: explicit lock, or environment.yml when unlocked
    pip_file: str | None  # context file with pip requirements
    pip_hashes: bool
    pip_index: str | None
    extra_apt: tuple[str, ...]  # what the installer needs beyond the base stage
    # Shell test that is true when the base already has what extra_apt would install:
    # then the env stage needs no apt network access (air-gapped bases ship them).
    extra_apt_probe: str
    # BuildKit cache mount for downloaded packages: out of the image, kept by the builder,
    # so a lock change downloads only the packages that changed.
    package_cache: str | None


class CommandStep(_Model):
    instruction: Literal["RUN"]
    text: str  # shell line (validated) or exec-form JSON array


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
    env: tuple[tuple[str, str], ...]  # (NAME, quoted value), sorted
    platform: str
    features: Features
    context_files: tuple[tuple[str, str], ...]  # (name, content), sorted
    image_pip: tuple[str, ...]  # pip packages the flavour brings (ONNX Runtime)


def quote(value: str) -> str:
    """Double-quote for ENV/LABEL: escape backslash, quote and `$` (Dockerfile expansion)."""
    if problem := V.no_control(value):
        raise SpecError(f"cannot quote value: {problem}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _mirror(ref: str, mirror: str | None) -> str:
    parsed = parse_image_ref(ref)
    if not mirror or parsed is None or parsed.registry != "docker.io":
        return ref
    repo = parsed.repository if "/" in parsed.repository else f"library/{parsed.repository}"
    tag = f":{parsed.tag}" if parsed.tag else ""
    digest = f"@{parsed.digest}" if parsed.digest else ""
    return f"{mirror}/{repo}{tag}{digest}"


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


def _with_digest(ref: str, digest: str | None) -> str:
    if not digest or "@" in ref:
        return ref
    return f"{ref}@{digest}"


def _env_install(checked: Checked, lock: Lock | None, platform: str, base_apt: set[str]) -> EnvInstall:
    spec = checked.resolved.spec
    conda = spec.conda
    image = checked.image
    # py-rattler needs the base's python3 >= 3.8; older distros get the pinned Miniconda.
    old_python = image is not None and image.distro.tag in OLD_SYSTEM_PYTHON
    installer: Installer = (conda.installer if conda else None) or ("conda" if old_python else "rattler")
    if installer == "rattler" and old_python:
        raise SpecError(
            f"installer 'rattler' needs python3 >= 3.8 in the base; {image.distro.tag} has an older one: "  # type: ignore[union-attr]
            "use installer: conda or micromamba",
            checked.resolved.loc(("conda", "installer")),
        )
    download = None
    version = RATTLER_VERSION
    if installer != "rattler":
        wanted = image.conda if image and installer == "conda" else None
        entry = load_catalog().installer("miniconda" if installer == "conda" else "micromamba", wanted)
        if entry is None:
            raise SpecError(f"the catalog has no pinned {installer} installer")
        tool, value = entry.linux_64.check
        download = Download(url=entry.linux_64.url, check_tool=tool, digest=value)
        version = entry.version
    pip_index = spec.mirrors.pypi_index if spec.mirrors else None
    secrets = P.section(conda.pip).options.env_names() if conda else ()
    if secrets:
        raise SpecError(
            f"the pip index needs ${{{'}, ${'.join(secrets)}}} while the image builds, and layerkit cannot "
            "pass build secrets to BuildKit yet; `layerkit lock` works, build with a credential-free mirror",
            checked.resolved.loc(("conda", "pip")),
        )
    # Only the rattler installer is given one: conda's and micromamba's `clean` would
    # empty a shared cache, and their builds cannot be exercised here.
    package_cache = RATTLER_PACKAGE_CACHE if installer == "rattler" else None
    extra_apt = tuple(
        sorted(set(RATTLER_APT if installer == "rattler" else INSTALLER_APT[installer]) - base_apt)
    )
    if lock is not None:
        if platform not in lock.platforms and lock.packages:
            raise SpecError(f"lock {lock.source} has no packages for platform {platform}")
        has_pip = bool(lock.for_platform(platform, "pip"))
        return EnvInstall(
            installer=installer,
            installer_download=download,
            installer_version=version,
            locked=True,
            conda_file=f"conda-{platform}.lock",
            pip_file=f"requirements-{platform}.txt" if has_pip else None,
            pip_hashes=True,
            pip_index=pip_index,
            extra_apt=extra_apt,
            extra_apt_probe=INSTALLER_PROBE[installer],
            package_cache=package_cache,
        )
    return EnvInstall(
        installer=installer,
        installer_download=download,
        installer_version=version,
        locked=False,
        conda_file="environment.yml",
        pip_file="requirements.txt" if conda and conda.pip else None,
        pip_hashes=False,
        pip_index=pip_index,
        extra_apt=extra_apt,
        extra_apt_probe=INSTALLER_PROBE[installer],
        package_cache=package_cache,
    )


def effective_dependencies(checked: Checked) -> tuple[str, ...]:
    """Conda dependencies as installed: the spec's, plus Python when no spec names it."""
    conda = checked.resolved.spec.conda
    deps = list(conda.dependencies or ()) if conda else []
    if checked.injected_python:
        deps.append(f"python={checked.injected_python}")
    return tuple(sorted(deps))


def _context_files(
    checked: Checked, env: EnvInstall | None, lock: Lock | None, platform: str
) -> list[tuple[str, str]]:
    spec = checked.resolved.spec
    files: list[tuple[str, str]] = []
    if env is None:
        return files
    if lock is not None:
        files.append((env.conda_file, lock.explicit(platform)))
        if env.pip_file:
            files.append((env.pip_file, lock.pip_requirements(platform)))
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
            # Options first, as lines: pip expands ${NAME} credentials in files only.
            lines = [*pip.options.lines(), *sorted(pip.requirements)]
            files.append((env.pip_file, "\n".join(lines) + "\n"))
    if env.installer == "rattler":
        from layerkit.resources import data_dir

        script = (data_dir("templates") / "install_env.py").read_text(encoding="utf-8")
        files.append(("install_env.py", script))
    return files


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
    mirror = spec.mirrors.base_registry if spec.mirrors else None
    digest = base.digest if base else None
    base_dockerfile = None
    if base and (base.dockerfile or base.dockerfile_file):
        base_dockerfile = user_base(checked)
        base_ref, runtime_ref = None, None
    elif base and base.image and image is None:
        base_ref, runtime_ref = _with_digest(_mirror(base.image, mirror), digest), None
    else:
        image = image or load_catalog().get(DEFAULT_FLAVOUR)
        assert image is not None
        base_ref = _with_digest(_mirror(image.devel, mirror), digest)
        runtime_ref = None if image.runtime == image.devel else _mirror(image.runtime, mirror)
    locked: list[tuple[str, str]] = []
    if lock is not None:
        # The lock pins what the spec leaves floating; a digest in the spec wins.
        if base_ref and "@" not in base_ref and (d := lock.base_digest(base_ref)):
            locked.append(("base", d))
            base_ref = f"{base_ref}@{d}"
        if runtime_ref and "@" not in runtime_ref and (d := lock.base_digest(runtime_ref)):
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
    env_install = _env_install(checked, lock, platform, apt) if managed else None
    env = dict(image.env) if image else {}
    env.update(spec.env or {})
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if mpi:
        path = f"{MPI_BIN[mpi.kind]}:{path}"
        env.setdefault("LD_LIBRARY_PATH", "/opt/mpi/lib")
    if managed:
        path = f"{ENV_PREFIX}/bin:{path}"
    if managed or mpi:
        env.setdefault("PATH", path)
    files = _context_files(checked, env_install, lock, platform)
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
        env=tuple(sorted((k, quote(v)) for k, v in env.items())),
        platform=platform,
        features=feats,
        context_files=tuple(sorted(files)),
        image_pip=tuple(sorted(image.pip)) if image and managed else (),
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
