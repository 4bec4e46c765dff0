"""Issue 17 "How, fast", the render side: the env stage runs on the builder's platform, a
foreign platform's locked pip section is cross-installed from wheels (install_env.py --pip),
and what cannot be cross-installed is refused at render, in one line."""

from __future__ import annotations

import pytest

from layerkit import api
from layerkit.errors import SpecError
from layerkit.lock.model import Lock, LockedPackage
from layerkit.pipeline import Rendered
from layerkit.render.envinstall import INSTALLER_LIB
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

SPEC = """name: two
platforms: [linux-64, linux-aarch64]
base: {flavour: cpu-ubuntu22.04}
conda:
  channels: [conda-forge]
  dependencies: [python=3.11, numpy=1.26]
"""
PIP = "  pip: [tinywheel==1.0]\n"
ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}


def checked(text: str) -> Checked:
    return check(resolve(load_text(text, "two.yaml")))


def lock(
    wheel: str = "cp311-cp311-manylinux_2_17_{arch}.whl", python: bool = True, version: str = "3.11.9"
) -> Lock:
    pkgs = []
    for plat, arch in ARCH.items():
        if python:
            url = f"https://conda.anaconda.org/conda-forge/{plat}/python-3.11.9-h0.conda"
            pkgs.append(
                LockedPackage(
                    manager="conda", platform=plat, name="python", version=version, url=url, sha256="1" * 64
                )
            )
        url = "https://files.example/tinywheel-1.0-" + wheel.format(arch=arch)
        pkgs.append(
            LockedPackage(
                manager="pip", platform=plat, name="tinywheel", version="1.0", url=url, sha256="2" * 64
            )
        )
    return Lock(source="two.conda-lock.yml", packages=tuple(pkgs))


def files(r: Rendered) -> dict[str, str]:
    return dict(r.plan.context_files)


def test_the_env_stage_runs_on_the_build_platform_for_every_target() -> None:
    for platform in ARCH:
        r = api.render(checked(SPEC + PIP), lock(), platform, auto_lock=False)
        env = [ln for ln in r.dockerfile.splitlines() if ln.endswith(" AS env")]
        assert len(env) == 1 and env[0].startswith("FROM --platform=$BUILDPLATFORM ")
        # The other stages are the target's (the build's platform attribute), never pinned here.
        assert sum("--platform" in ln for ln in r.dockerfile.splitlines() if ln.startswith("FROM ")) == 1
        assert f"--lock conda-{platform}.lock --platform {platform} " in r.dockerfile


def test_a_foreign_locked_pip_section_is_cross_installed_from_wheels() -> None:
    r = api.render(checked(SPEC + PIP), lock(), "linux-aarch64", auto_lock=False)
    run = (
        "/opt/installer/bin/python install_env.py --prefix /opt/env --platform linux-aarch64 "
        "--pip requirements-linux-aarch64.txt --python 3.11 --glibc 2.35"
    )
    assert f"RUN {run} \\\n" in r.dockerfile
    assert "/opt/env/bin/python -m pip" not in r.dockerfile  # the target's Python never runs
    ctx = files(r)
    name, version, sha = INSTALLER_LIB
    assert f"{name}=={version} --hash=sha256:{sha}\n" in ctx["installer-requirements.txt"]
    assert "_manylinux.py" not in ctx  # the tags are install_env.py's --platform values
    assert "manylinux_2_17_aarch64.whl" in ctx["requirements-linux-aarch64.txt"]


def test_the_native_pip_step_is_unchanged() -> None:
    r = api.render(checked(SPEC + PIP), lock(), "linux-64", auto_lock=False)
    assert (
        "PYTHONPATH=/tmp/layerkit /opt/env/bin/python -m pip install --no-cache-dir --no-deps --require-hashes "
        "-r requirements-linux-64.txt" in r.dockerfile
    )
    assert "--pip " not in r.dockerfile
    ctx = files(r)
    assert "installer==" not in ctx["installer-requirements.txt"] and "_manylinux.py" in ctx


def test_the_pip_mirror_serves_the_cross_download_too() -> None:
    mirrored = SPEC + PIP + "mirrors: {pypi_index: 'https://pypi.internal/simple'}\n"
    r = api.render(checked(mirrored), lock(), "linux-aarch64", auto_lock=False)
    assert "--glibc 2.35 --index-url https://pypi.internal/simple" in r.dockerfile


@pytest.mark.parametrize(
    ("spec", "the_lock", "words", "line"),
    [
        (SPEC + PIP, None, "the pip section cannot be cross-installed for linux-aarch64 unlocked", 7),
        (SPEC + PIP, lock("tar.gz"), "pip package tinywheel 1.0 is locked as an sdist for linux-aarch64", 7),
        (SPEC + PIP, lock(python=False), "has no python for linux-aarch64", 7),
        # The lock's python version reaches the RUN line: anything but a version is refused.
        (SPEC + PIP, lock(version="3.11$(touch /tmp/pwned)"), "python version '3.11$(touch /tmp/pwned)'", 7),
    ],
)
def test_what_cannot_be_cross_installed_is_refused_at_render(
    spec: str, the_lock: Lock | None, words: str, line: int
) -> None:
    with pytest.raises(SpecError) as err:
        api.render(checked(spec), the_lock, "linux-aarch64", auto_lock=False)
    assert words in err.value.message and "\n" not in err.value.message
    assert err.value.location is not None and err.value.location.line == line
    # The same spec and lock render for the builder's own platform.
    assert api.render(checked(spec), the_lock, "linux-64", auto_lock=False).dockerfile


def test_a_flavour_with_unlocked_pip_packages_is_refused_for_another_platform_at_validate() -> None:
    """ONNX Runtime has aarch64 wheels (the catalog says so), but the flavour's own pip packages
    are not locked, so they cannot be cross-installed: refused at the platforms entry, with the
    way that works (a plain flavour, the package in the locked pip section)."""
    with pytest.raises(SpecError) as err:
        checked(SPEC.replace("cpu-ubuntu22.04", "onnxruntime-cpu"))
    assert "installs pip packages (onnxruntime==1.16.3) that are not locked" in err.value.message
    assert "conda: pip:" in err.value.message and "\n" not in err.value.message
    assert err.value.location is not None and (err.value.location.line, err.value.location.col) == (2, 23)
    assert checked(SPEC.replace("cpu-ubuntu22.04", "onnxruntime-cpu").replace(", linux-aarch64", ""))


def test_a_platform_listed_twice_is_refused_at_its_second_entry() -> None:
    with pytest.raises(SpecError) as err:
        checked(SPEC.replace("[linux-64, linux-aarch64]", "[linux-64, linux-64]"))
    assert "platform linux-64 is listed twice" in err.value.message
    assert err.value.location is not None and (err.value.location.line, err.value.location.col) == (2, 23)
