"""The system blocks: shell and locale, apt, the user, the spec's steps, fuse.

Each image that runs the environment gets them: the base stage, and a runtime image of its
own when the flavour has one (so the base steps run on both).
"""

from __future__ import annotations

from collections.abc import Iterable

from layerkit.render.blocks.dockerfile import Block, Command, Env, Run, Shell, User, Workdir, run

# pipefail: a managed image's RUNs pipe (the checksum checks); bash is in every catalog base.
BASH_PIPEFAIL = ("/bin/bash", "-o", "pipefail", "-c")
FUSE_APT = ("fuse", "libfuse-dev")
# What an apt install leaves besides the packages: the package lists, and logs and caches that
# record when it ran (dpkg and apt logs, ldconfig's cache of file dates, the *-old backups), so
# two runs of one RUN would differ. ldconfig and debconf remake theirs when they need them.
APT_LEFTOVERS = (
    "rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log"
    " /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old /var/lib/dpkg/*-old"
)


def shell_and_locale(managed: bool) -> Block:
    shell = (Shell(BASH_PIPEFAIL),) if managed else ()
    both = (*shell, Env((("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8")), one_line=True))
    return Block(base=both, runtime=both)


def apt_install(packages: Iterable[str], pinned: bool) -> Run:
    """One RUN installing `packages` (sorted), leaving no package lists, logs or caches. Pinned
    versions may move packages the base already holds (CUDA images): allow that then."""
    allow = " --allow-downgrades --allow-change-held-packages" if pinned else ""
    install = Command(
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends{allow}",
        tuple(sorted(packages)),
    )
    return Run((Command("apt-get update"), install, Command("apt-get clean"), Command(APT_LEFTOVERS)))


def apt(base: tuple[str, ...], runtime: tuple[str, ...], pinned: bool) -> Block:
    """The apt packages of the blocks (Block.apt, Block.build_apt), one RUN per image."""
    return Block(
        base=(apt_install(base, pinned),) if base else (),
        runtime=(apt_install(runtime, pinned),) if runtime else (),
    )


def user(name: str, uid: int, workdir: str) -> Block:
    """The runtime user (uid = its group's gid) and its workdir; the image ends as that user."""
    setup = run(
        f"(getent group {uid} >/dev/null || groupadd --gid {uid} {name})",
        f"(id -u {name} >/dev/null 2>&1 || useradd --uid {uid} --gid {uid} --create-home --shell /bin/sh {name})",
        f"mkdir -p {workdir}",
        f"chown {uid}:{uid} {workdir}",
    )
    return Block(base=(setup,), runtime=(setup,), closing=(User(uid), Workdir(workdir)))


def steps(base: Iterable[str], final: Iterable[str]) -> Block:
    """The spec's steps (validated shell lines, or exec-form JSON): base steps on every image."""
    on_base = tuple(run(s) for s in base)
    return Block(base=on_base, runtime=on_base, final=tuple(run(s) for s in final))


def fuse(datasets: bool) -> Block:
    """Mounted datasets need FUSE on the image that runs."""
    return Block(apt=FUSE_APT if datasets else ())


def environment(pairs: tuple[tuple[str, str], ...]) -> Block:
    """The image's variables (render/envvars.py: quoted, or search paths that extend the
    base's), set once the environment is in place."""
    return Block(final=(Env(pairs),) if pairs else ())
