"""The building blocks of the Dockerfile (render/blocks/): what each adds to which stage, and
the template that only prints them. Bytes are pinned by the goldens (test_render_golden.py);
these pin the decisions."""

from __future__ import annotations

import re
import typing

from layerkit.render.blocks import system
from layerkit.render.blocks.assemble import SOURCE_DATE_EPOCH, stages
from layerkit.render.blocks.dockerfile import (
    Arg,
    Block,
    Comment,
    Copy,
    From,
    Instruction,
    Raw,
    Run,
    Workdir,
    run,
)
from layerkit.render.blocks.installer import CLEANUP, installer
from layerkit.render.blocks.mpi import MPI_BUILD_APT, mpi
from layerkit.render.envinstall import Download as InstallerDownload
from layerkit.render.envinstall import EnvInstall
from layerkit.resources import data_dir
from layerkit.spec.catalog import Download, Mpi

SHA = "c" * 64


def env_install(**changes: object) -> EnvInstall:
    base = EnvInstall(
        installer="rattler", installer_download=None, installer_version="0.28.0",
        installer_ref="python:3.12-slim", installer_image="python:3.12-slim", locked=True,
        conda_file="conda-linux-64.lock", pip_file=None, pip_hashes=True, pip_index=None,
        package_cache="/var/cache/layerkit/rattler", glibc_check=None,
    )  # fmt: skip
    return EnvInstall.model_validate({**base.model_dump(), **changes})


def runs(instructions: tuple[Instruction, ...]) -> list[Run]:
    return [i for i in instructions if isinstance(i, Run)]


def texts(r: Run) -> list[str]:
    return [c.text for c in r.commands]


def test_the_cleanup_rides_on_the_last_install_run() -> None:
    alone = runs(installer(env_install(), "linux-64", ()).env)
    assert texts(alone[-1])[-len(CLEANUP) :] == list(CLEANUP)
    with_pip = runs(installer(env_install(pip_file="requirements-linux-64.txt"), "linux-64", ()).env)
    install, pip = with_pip[-2:]
    assert not set(CLEANUP) & set(texts(install))
    assert texts(pip)[-len(CLEANUP) :] == list(CLEANUP)
    assert "--no-deps --require-hashes -r requirements-linux-64.txt" in texts(pip)[0]


def test_locked_and_unlocked_installs_differ_only_in_their_input() -> None:
    for name, locked, unlocked in (
        ("conda", "conda create --yes", "conda env create --prefix"),
        ("rattler", "--lock conda.lock", "--spec conda.lock"),
    ):
        pick = {"installer": name, "conda_file": "conda.lock"}
        if name == "conda":
            pick["installer_download"] = InstallerDownload(
                url="https://example.org/m.sh", algorithm="sha256", digest=SHA
            )
        first = [texts(r)[0] for r in runs(installer(env_install(**pick, locked=True), "linux-64", ()).env)]
        second = [texts(r)[0] for r in runs(installer(env_install(**pick, locked=False), "linux-64", ()).env)]
        assert locked in first[-1] and unlocked in second[-1]
        assert first[:-1] == second[:-1]


def test_pip_credentials_are_secrets_of_the_pip_run_only() -> None:
    e = env_install(pip_file="requirements.txt", pip_secrets=("PIP_USER", "PIP_PASSWORD"), secrets=("TOKEN",))
    install, pip = runs(installer(e, "linux-64", ("onnxruntime==1.22.0",)).env)[-2:]
    assert [(m.type, m.options) for m in install.mounts][1:] == [("secret", (("id", "TOKEN"),))]
    assert [(m.type, m.options) for m in pip.mounts] == [
        ("secret", (("id", "PIP_USER"),)),
        ("secret", (("id", "PIP_PASSWORD"),)),
        ("tmpfs", (("target", "/run/layerkit-pip"),)),
    ]
    first, reqs, flavour = texts(pip)[:3]
    assert first.startswith("python3 expand_secrets.py requirements.txt /run/layerkit-pip/requirements.txt")
    assert reqs.endswith("-r /run/layerkit-pip/requirements.txt")
    assert flavour.endswith(" onnxruntime==1.22.0")  # the flavour's packages, after the spec's


def test_the_final_stage_gets_the_glibc_check_then_the_linked_prefix() -> None:
    final = installer(env_install(glibc_check="2.28"), "linux-64", ()).final
    assert [i.kind for i in final] == ["script", "copy"]
    assert final[1] == Copy(("/opt/env",), "/opt/env", from_stage="env", link=True)
    assert "!= 2.28 ]" in " ".join(final[0].lines)  # type: ignore[union-attr]


def test_mpi_is_built_on_the_base_and_copied_into_a_runtime_image() -> None:
    source = Download(url="https://example.org/openmpi.tar.bz2", sha256=SHA)
    built = mpi(Mpi(kind="openmpi", version="4.1.6", source=source), runtime_image=True)
    assert built.base[0] == Workdir("/tmp/openmpi")
    assert f'echo "{SHA}  openmpi.tar.bz2" | sha256sum -c -' in texts(built.base[1])  # type: ignore[arg-type]
    assert built.runtime == (Copy(("/opt/mpi",), "/opt/mpi", from_stage="base", link=True),)
    assert built.build_apt == MPI_BUILD_APT["openmpi"] and not built.apt
    assert mpi(Mpi(kind="openmpi", version="4.1.6", source=source), runtime_image=False).runtime == ()
    assert mpi(Mpi(kind="openmpi", version="4.1.6"), runtime_image=True) == Block()  # the image has it


def test_apt_pins_allow_moving_held_packages_and_nothing_means_no_run() -> None:
    pinned = system.apt(("curl=7.81.*", "git"), (), pinned=True)
    install = pinned.base[0].commands[1]  # type: ignore[union-attr]
    assert install.text.endswith("--allow-downgrades --allow-change-held-packages")
    assert install.items == ("curl=7.81.*", "git") and pinned.runtime == ()
    assert system.apt((), (), pinned=False) == Block()


def test_stages_follow_block_order_and_a_runtime_image_gets_its_own_setup() -> None:
    a = Block(base=(run("a"),), runtime=(run("a-rt"),), final=(run("a-final"),), closing=(Workdir("/w"),))
    b = Block(base=(run("b"),), env=(From("inst", "env"), run("install")), final=(run("b-final"),))
    on_base, closing = stages((From("img", "base"),), None, (a, b))
    laid = [[i for i in s.instructions if not isinstance(i, Arg)] for s in on_base]
    assert [[getattr(i, "ref", None) or texts(i)[0] for i in s] for s in laid] == [  # type: ignore[arg-type]
        ["img", "a", "b"],
        ["inst", "install"],
        ["base", "a-final", "b-final"],
    ]
    assert closing == (Workdir("/w"),)
    own, _ = stages((From("img", "base"),), "rt", (a,))
    assert len(own) == 2  # no env stage without an env block
    assert own[1].instructions[:3] == (From("rt", "runtime"), EPOCH, run("a-rt"))


EPOCH = Arg("SOURCE_DATE_EPOCH", "315532800")


def test_every_stage_declares_source_date_epoch_right_after_its_from() -> None:
    # An ARG reaches only the RUNs of the stage that declares it: useradd dates /etc/shadow by
    # it, pip's pycs are hash-based under it. A user's inlined Dockerfile stays as written.
    user = (Raw("FROM x AS mine\nRUN true"), From("mine", "base"))
    env = Block(env=(Comment("env"), From("inst", "env"), run("install")))
    laid, _ = stages(user, None, (Block(base=(run("b"),)), env))
    assert [s.instructions for s in laid] == [
        (*user, EPOCH, run("b")),
        (Comment("env"), From("inst", "env"), EPOCH, run("install")),
        (From("base", "runtime"), EPOCH),
    ]
    assert EPOCH.value == str(SOURCE_DATE_EPOCH)


def test_an_apt_run_leaves_no_lists_logs_or_dated_caches() -> None:
    last = system.apt(("git",), (), pinned=False).base[0].commands[-1]  # type: ignore[union-attr]
    for leftover in (
        "/var/lib/apt/lists/*",
        "/var/log/apt/*",
        "/var/log/dpkg.log",
        "/var/cache/ldconfig/aux-cache",
    ):
        assert leftover in last.text.split(), leftover


def test_the_template_prints_every_instruction_kind_and_reads_only_the_layout() -> None:
    template = (data_dir("templates") / "Dockerfile.j2").read_text(encoding="utf-8")
    kinds = {t.kind for t in typing.get_args(Instruction)}
    formats = re.search(r"set formats = \{(.*?)\}", template, re.S)
    assert formats is not None
    assert set(re.findall(r'"(\w+)":', formats.group(1))) == kinds
    # The plan's decisions are not the template's: it reads only the laid-out instructions.
    assert set(re.findall(r"plan\.(\w+)", template)) == {"stages", "closing"}
