"""The files block: the build context's files (the lock or environment.yml, requirements,
layerkit's scripts) and the env stage's COPYs of them, in the order that keeps layers cached."""

from __future__ import annotations

import json
from typing import Literal

from layerkit.errors import Position, SpecError
from layerkit.lock.model import Lock
from layerkit.render import envinstall, envlayers
from layerkit.render.blocks.dockerfile import Copy
from layerkit.render.envinstall import EnvInstall
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec.catalog import solve_glibc
from layerkit.spec.validate import Checked

FETCH_INSTALLER = "fetch_installer.py"
INSTALLER_REQUIREMENTS = "installer-requirements.txt"  # py-rattler, pinned by its wheels' sha256
# PEP 600 hook, on PYTHONPATH for the env stage's pip: which manylinux wheels run on the base.
MANYLINUX_FILE = "_manylinux.py"
SPLIT_ENV = "split_env.py"  # moves each package group's files out of the prefix (envlayers.py)
LAYERS_FILE = "env-layers.json"
CANONICAL_FILE = "canonical-urls.json"  # the site's mirror table (canonical_urls.py)
CANONICAL_SCRIPT = "canonical_urls.py"  # with the table, or a locked native pip section
LAYERS_DIR = "/layerkit/"  # in the env stage, outside the work folder the install RUN removes
MANYLINUX = """\
# Written by layerkit. The env is made in the installer image but runs on the base image:
# pip asks this module (PEP 600) which manylinux wheels run, and the base's glibc decides.
BASE_GLIBC = ({major}, {minor})


def manylinux_compatible(tag_major, tag_minor, tag_arch):
    return (tag_major, tag_minor) <= BASE_GLIBC
"""


def context_files(
    checked: Checked,
    env: EnvInstall | None,
    lock: Lock | None,
    platform: str,
    image_pip: bool,
    dependencies: tuple[str, ...],
) -> list[tuple[str, str]]:
    """(name, content) of the build context; `dependencies` are the conda dependencies as
    installed (render/renderplan.py effective_dependencies), for an unlocked environment.yml."""
    spec = checked.resolved.spec
    files: list[tuple[str, str]] = []
    if env is None:
        return files
    if lock is not None:
        # micromamba 1.5 reads whatever follows a URL's `#` as its md5; conda >= 24.9 and
        # install_env.py read `#sha256:`, the stronger one.
        checksum: Literal["md5", "sha256"] = "md5" if env.installer == "micromamba" else "sha256"
        _checksummed(lock, platform, checksum == "md5")
        files.append((env.conda_file, lock.explicit(platform, checksum)))
        if env.pip_file:
            creds = "".join(f"{ln}\n" for ln in envinstall.pip_credential_lines(checked))
            files.append((env.pip_file, creds + lock.pip_requirements(platform)))
    else:  # unlocked: nothing to verify the packages against but the channels' own checksums
        conda, mirrors = spec.conda, spec.mirrors
        channels = list(M.resolved_channels(conda, mirrors))
        doc = {
            # nodefaults: conda env create would append its .condarc channels otherwise
            "channels": channels + ([] if env.installer == "rattler" else [M.NODEFAULTS]),
            "dependencies": [M.qualified(d, mirrors) for d in dependencies],
        }
        # JSON is valid YAML and needs no escaping decisions of our own.
        files.append(("environment.yml", json.dumps(doc, indent=2, sort_keys=True) + "\n"))
        if env.pip_file and conda and conda.pip:
            pip = P.section(conda.pip)
            _hashes_all_or_none(checked, pip.requirements)
            # Options first, as lines: pip expands ${NAME} credentials in files only.
            lines = [*pip.options.lines(), *sorted(pip.requirements)]
            files.append((env.pip_file, "\n".join(lines) + "\n"))
    if env.canonical_urls:
        table = {"prefixes": [list(pair) for pair in env.canonical_urls]}
        files.append((CANONICAL_FILE, json.dumps(table, indent=2) + "\n"))
    if _native_pip(env) or image_pip:
        major, minor = (int(x) for x in solve_glibc(checked.image).split(".")[:2])
        files.append((MANYLINUX_FILE, MANYLINUX.format(major=major, minor=minor)))
    from layerkit.resources import data_dir

    scripts = [n for n in _env_scripts(env, image_pip) if n != MANYLINUX_FILE]
    if env.installer != "rattler":
        scripts.append(FETCH_INSTALLER)
    else:
        files.append((INSTALLER_REQUIREMENTS, installer_requirements(env)))
    if env.layers:
        scripts.append(SPLIT_ENV)
        files.append((LAYERS_FILE, envlayers.groups_file(env.layers)))
    files += [(name, (data_dir("templates") / name).read_text(encoding="utf-8")) for name in scripts]
    return files


def _env_scripts(env: EnvInstall, image_pip: bool) -> tuple[str, ...]:
    """The env stage's own files: the same for every lock of a layerkit version and base."""
    names = ["install_env.py"] if env.installer == "rattler" else []
    if _native_pip(env) or image_pip:
        names.append(MANYLINUX_FILE)
    if env.pip_secrets:
        names.append("expand_secrets.py")
    if canonical_step(env):
        names.append(CANONICAL_SCRIPT)
    return tuple(sorted(names))


def locked_native_pip(env: EnvInstall) -> bool:
    """A locked pip section pip installs natively, by URL: pip records each wheel's URL there
    (direct_url.json), which canonical_urls.py drops with or without mirrors, so a site's
    mirror, or none, never changes the image."""
    return env.installer == "rattler" and bool(env.pip_file) and env.locked and env.cross_pip is None


def canonical_step(env: EnvInstall) -> bool:
    """Whether canonical_urls.py runs: mirror URLs to map back, or pip's URLs to drop."""
    return bool(env.canonical_urls) or locked_native_pip(env)


def _native_pip(env: EnvInstall) -> bool:
    """pip runs in the environment's own Python (its wheels capped by _manylinux.py); a cross
    pip step names its tags itself."""
    return env.pip_file is not None and env.cross_pip is None


def installer_requirements(env: EnvInstall) -> str:
    hashes = " ".join(f"--hash=sha256:{h}" for h in envinstall.RATTLER_WHEEL_SHA256)
    lines = [f"py-rattler=={env.installer_version} {hashes}\n"]
    if env.cross_pip is not None:  # only then: the native path needs no more than before
        name, version, sha = envinstall.INSTALLER_LIB
        lines.append(f"{name}=={version} --hash=sha256:{sha}\n")
    return "".join(lines)


def fetch_copy() -> Copy:
    """conda's and micromamba's download script, before anything else of the env stage."""
    return Copy((FETCH_INSTALLER,), "./")


def installer_requirements_copy() -> Copy:
    """py-rattler's pinned requirement, before anything else of the env stage."""
    return Copy((INSTALLER_REQUIREMENTS,), "./")


def env_copies(env: EnvInstall, image_pip: bool) -> tuple[Copy, ...]:
    """The installer's own files come before the lock, so a lock change re-copies only the lock.
    Those copies go to the env stage's work folder under /tmp and are not linked: a linked
    copy would re-create /tmp as 0755 (losing its sticky bit), and the install RUN after them
    re-runs on any change below anyway. The copies into /opt are linked: a base change then
    re-copies neither the environment nor MPI."""
    scripts = _env_scripts(env, image_pip)
    # The site's mirror table goes with the lock: both are the site's, the scripts are not.
    table = (CANONICAL_FILE,) if env.canonical_urls else ()
    inputs = (env.conda_file, *table, *((env.pip_file,) if env.pip_file else ()))
    return tuple(Copy(names, "./") for names in (scripts, inputs) if names)


def layers_copy(env: EnvInstall) -> tuple[Copy, ...]:
    """The split script and its groups, where the install RUN's cleanup leaves them."""
    return (Copy((SPLIT_ENV, LAYERS_FILE), LAYERS_DIR),) if env.layers else ()


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


def _checksummed(lock: Lock, platform: str, md5_only: bool) -> None:
    """Every locked package has a checksum its installer verifies the download against (conda,
    micromamba and install_env.py: the explicit file's `#`; pip: --require-hashes). conda-lock
    writes both for a conda package and a sha256 for a pip one; without, nothing is verified."""
    for p in (*lock.for_platform(platform, "conda"), *lock.for_platform(platform, "pip")):
        if p.manager == "conda":
            ok, need = (
                (p.md5, "md5 (all micromamba 1.5 verifies)")
                if md5_only
                else (p.sha256 or p.md5, "sha256 or md5")
            )
        else:
            ok, need = p.sha256, "sha256"
        if not ok:
            raise SpecError(
                f"the lock gives {p.manager} package {p.name} {p.version} no {need}, so the build could "
                "not verify it; run `layerkit lock` again (it records both for every conda package)",
                Position(lock.source),
            )
