"""The installer block: the env stage, which makes /opt/env in the installer image (conda,
micromamba or py-rattler), then pip's packages (the spec's requirements and the flavour's own,
e.g. ONNX Runtime); and what the final stage takes from it."""

from __future__ import annotations

import shlex

from layerkit.render.blocks import files
from layerkit.render.blocks.dockerfile import (
    Block,
    Comment,
    Copy,
    Env,
    From,
    Instruction,
    Mount,
    Run,
    Script,
    Workdir,
    run,
)
from layerkit.render.envinstall import EnvInstall

ENV_PREFIX = "/opt/env"
WORK = "/tmp/layerkit"  # the env stage's work folder: its context files, removed by the cleanup
PIP_SECRETS_DIR = "/run/layerkit-pip"
# The env stage runs on the builder's platform whatever the target: install_env.py installs the
# target platform's locked packages (and wheels, cross_pip) without running any of them.
BUILD_PLATFORM = "$BUILDPLATFORM"
STAGE_COMMENT = "--- env: the conda environment, made in the installer image, not on the base ---"
# Rides on the last install RUN: one snapshot fewer to redo when the lock changes.
# chmod: py-rattler writes conda-meta records 0600; the image's non-root user must read them.
CLEANUP = (
    f"find {ENV_PREFIX} -name __pycache__ -type d -prune -exec rm -rf {{}} +",
    f"rm -rf {ENV_PREFIX}/pkgs {ENV_PREFIX}/conda-meta/*.json.bak {WORK}",
    f"chmod -R a+rX {ENV_PREFIX}/conda-meta",
)


def _index_option(env: EnvInstall) -> str:
    return f" --index-url {shlex.quote(env.pip_index)}" if env.pip_index else ""


def _bootstrap(env: EnvInstall) -> tuple[Instruction, ...]:
    """The installer itself, checksum-checked: py-rattler in a venv, or conda/micromamba."""
    if env.installer == "rattler":
        pip = f"/opt/installer/bin/pip install --no-cache-dir{_index_option(env)}"
        # The wheel is checked against its published sha256, as every package after it is.
        install = f"{pip} --no-deps --require-hashes -r {files.INSTALLER_REQUIREMENTS}"
        return files.installer_requirements_copy(), run("python3 -m venv /opt/installer", install)
    d = env.installer_download
    assert d is not None  # envinstall.py downloads every installer but rattler
    fetch = f'python3 {files.FETCH_INSTALLER} "{d.url}" {d.algorithm} {d.digest}'
    copy = files.fetch_copy()
    if env.installer == "micromamba":
        return copy, run(f"{fetch} micromamba.tar.bz2 bin/micromamba /usr/local/bin/micromamba")
    return copy, run(f"{fetch} miniconda.sh", "bash miniconda.sh -b -p /opt/conda", "rm miniconda.sh")


def _overrides(env: EnvInstall) -> tuple[Env, ...]:
    """An unlocked solve's virtual packages (envinstall.py EnvInstall.cuda_override)."""
    pairs = tuple(
        (name, value)
        for name, value in (
            ("CONDA_OVERRIDE_CUDA", env.cuda_override),
            ("CONDA_OVERRIDE_GLIBC", env.glibc_override),
        )
        if value
    )
    return (Env(pairs, one_line=True),) if pairs else ()


def _install(env: EnvInstall, platform: str) -> Run:
    p, f = ENV_PREFIX, env.conda_file
    if env.installer == "micromamba":
        return run(f"micromamba create --yes --prefix {p} --file {f}", "micromamba clean --all --yes")
    if env.installer == "conda":
        create = (
            f"create --yes --prefix {p} --file {f}" if env.locked else f"env create --prefix {p} --file {f}"
        )
        return run(f"/opt/conda/bin/conda {create}", "/opt/conda/bin/conda clean -aqy")
    mounts: list[Mount] = []
    cache = ""
    if env.package_cache:
        pkgs = (("id", f"layerkit-rattler-pkgs-{platform}"), ("target", env.package_cache))
        mounts.append(Mount("cache", pkgs))
        cache = f" --cache-dir {env.package_cache}"
    mounts += [Mount("secret", (("id", s),)) for s in env.secrets]
    mode = "--lock" if env.locked else "--spec"
    command = f"/opt/installer/bin/python install_env.py --prefix {p} {mode} {f} --platform {platform}{cache}"
    return run(command, mounts=tuple(mounts))


def _cross_pip(env: EnvInstall, req: str | None, platform: str) -> str:
    """Another platform's locked wheels, by the installer venv (install_env.py --pip): the
    environment's own Python is the target's and would need emulation."""
    c = env.cross_pip
    assert c is not None and req is not None
    return (
        f"/opt/installer/bin/python install_env.py --prefix {ENV_PREFIX} --platform {platform} --pip {req} "
        f"--python {c.python} --glibc {c.glibc}{_index_option(env)}"
    )


def _pip(env: EnvInstall, packages: tuple[str, ...], platform: str) -> Run | None:
    """pip's RUN: the requirements file, then `packages` (the flavour's, e.g. ONNX Runtime).
    PYTHONPATH: _manylinux.py caps wheels at the base's glibc (PEP 600), not the installer
    image's. Index credentials: each variable a secret of this RUN only, filled into a copy of
    the requirements file on a tmpfs (templates/expand_secrets.py)."""
    if not env.pip_file and not packages:
        return None
    pip = f"PYTHONPATH={WORK} {ENV_PREFIX}/bin/python -m pip install --no-cache-dir{_index_option(env)}"
    commands: list[str] = []
    mounts: tuple[Mount, ...] = ()
    req = env.pip_file
    if env.pip_file and env.pip_secrets:
        req = f"{PIP_SECRETS_DIR}/{env.pip_file}"
        secrets = [Mount("secret", (("id", s),)) for s in env.pip_secrets]
        mounts = (*secrets, Mount("tmpfs", (("target", PIP_SECRETS_DIR),)))
        names = " ".join(env.pip_secrets)
        commands.append(f"python3 expand_secrets.py {env.pip_file} {req} /run/secrets {names}")
    if env.pip_file and env.cross_pip:
        commands.append(_cross_pip(env, req, platform))
    elif env.pip_file:
        # Locked: each wheel is checked against the lock's sha256, so a changed one fails. An
        # unlocked build has no lock to check against (only the hashes a user wrote, if any).
        hashes = " --no-deps --require-hashes" if env.pip_hashes else ""
        commands.append(f"{pip}{hashes} -r {req}")
    if packages:
        commands.append(" ".join((pip, *packages)))
    return run(*commands, mounts=mounts)


def _glibc_check(need: str) -> Script:
    """The catalog does not know this base's glibc: the build checks it before the env lands."""
    return Script(
        (
            'have="$(getconf GNU_LIBC_VERSION 2>/dev/null || true)"; have="${have#glibc }";',
            f'    if [ -z "$have" ] || [ "$(printf \'%s\\n\' {need} "$have" | sort -V | head -n1)" != {need} ]; then',
            f'      echo "layerkit: the locked packages need glibc >= {need}; this base has ${{have:-none}}: '
            'use a newer base image, or relock" >&2; exit 1;',
            "    fi",
        )
    )


def installer(env: EnvInstall | None, platform: str, image_pip: tuple[str, ...]) -> Block:
    """The env stage and the final stage's copy of /opt/env (linked: see files.env_copies)."""
    if env is None:
        return Block()
    installs = [_install(env, platform)]
    if (pip := _pip(env, image_pip, platform)) is not None:
        installs.append(pip)
    if len(installs) > 1 and env.layers:
        # Split in the conda install's own RUN: in pip's RUN each rename would copy the file
        # up from the layer below, keeping every group twice in the env stage image. pip's
        # files belong to the rest anyway; the records are made readable before they move,
        # and canonical before that (a record moves with its group).
        installs[0] = installs[0].then(*_canonical(env, pip=False), CLEANUP[0], CLEANUP[2], *_split(env))
        installs[-1] = installs[-1].then(*_canonical(env, pip=True), *CLEANUP)
    else:
        installs[-1] = installs[-1].then(*_canonical(env, pip=True), *CLEANUP, *_split(env))
    stage = (
        Comment(STAGE_COMMENT),
        From(env.installer_ref, "env", BUILD_PLATFORM),
        Workdir(WORK),
        *_bootstrap(env),
        *files.env_copies(env, bool(image_pip)),
        *files.layers_copy(env),
        *_overrides(env),
        *installs,
    )
    check = (_glibc_check(env.glibc_check),) if env.glibc_check else ()
    prefix = Copy((ENV_PREFIX,), ENV_PREFIX, from_stage="env", link=True)
    return Block(env=stage, final=(*check, *_group_copies(env), prefix))


def _canonical(env: EnvInstall, pip: bool) -> tuple[str, ...]:
    """After every install, before the cleanup removes the table: the mirror URLs recorded in
    the prefix back to canonical ones (templates/canonical_urls.py). A native locked pip step
    records each wheel's URL (direct_url.json), dropped there; a cross one records none."""
    drop = pip and files.locked_native_pip(env)
    if not env.canonical_urls and not drop:
        return ()
    command = f"/opt/installer/bin/python {files.CANONICAL_SCRIPT} --prefix {ENV_PREFIX}"
    if env.canonical_urls:
        command += f" --table {files.CANONICAL_FILE}"
    if drop:
        command += f" --requirements {env.pip_file}"
    return (command,)


def _split(env: EnvInstall) -> tuple[str, ...]:
    """After the cleanup, in the install RUN: renames within its own layer cost nothing, where
    a RUN of their own would copy every moved file up from the layer below."""
    if not env.layers:
        return ()
    split = f"{files.LAYERS_DIR}{files.SPLIT_ENV}"
    return (f"python3 {split} --prefix {ENV_PREFIX} {files.LAYERS_DIR}{files.LAYERS_FILE}",)


def _group_copies(env: EnvInstall) -> tuple[Copy, ...]:
    """One linked layer per package group, before the rest of the prefix: a group's layer is
    the same blob until one of its packages changes (render/envlayers.py)."""
    return tuple(Copy((g.folder,), ENV_PREFIX, from_stage="env", link=True) for g in env.layers)
