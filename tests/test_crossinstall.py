"""Issue 17 "How, fast": the env stage runs on the builder's platform (`FROM --platform=
$BUILDPLATFORM`) and cross-installs the target's packages. templates/install_env.py is run
here for real, on this amd64 host, for linux-aarch64: conda packages from a served local
channel, and the locked pip wheels from a served PyPI mirror (pip download for the target's
tags, pypa's installer into the prefix). No aarch64 code runs: the test channel's python is
a fake, and so is the aarch64 wheel's extension."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import fixtures_build as fb
import fixtures_channels as fx
import pytest
from rattler.index import index_fs

from layerkit.resources import data_dir

SCRIPT = str(data_dir("templates") / "install_env.py")
POST_LINK = 'echo ran > "$PREFIX/share/postkit-ran"\n'


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # No pip config of this host (its find-links and constraints): the env stage has none.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env, timeout=300
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A channel with one package built for both platforms (its file says which) and an
    aarch64 package with a post-link script."""
    root = tmp_path_factory.mktemp("xchannel") / "channel"
    (root / "noarch").mkdir(parents=True)
    for name, version, subdir, files in (
        ("archkit", "1.0", "linux-64", {"share/archkit/ARCH": "x86_64\n"}),
        ("archkit", "1.0", "linux-aarch64", {"share/archkit/ARCH": "aarch64\n"}),
        ("python", "3.11.9", "linux-aarch64", {"bin/python3.11": "fake interpreter"}),
        ("postkit", "1.0", "linux-aarch64", {"bin/.postkit-post-link.sh": POST_LINK}),
    ):
        pkg = fx.PkgDef(name, version, subdir=subdir)
        fb._write_package(root, pkg, {k: v.encode() for k, v in files.items()})  # paths.json with digests
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    url, stop = fx.serve_directory(root)
    try:
        yield url, root
    finally:
        stop()


def _explicit(tmp: Path, url: str, root: Path, subdir: str, names: tuple[str, ...]) -> Path:
    lines = ["@EXPLICIT"]
    for name in names:
        pkg = root / subdir / f"{name}-h0_0.tar.bz2"
        lines.append(f"{url}/{subdir}/{pkg.name}#sha256:{_sha256(pkg)}")
    path = tmp / f"conda-{subdir}.lock"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_linux_aarch64_lock_installs_the_aarch64_packages_on_this_amd64_host(
    tmp_path: Path, channel: tuple[str, Path]
) -> None:
    url, root = channel
    lock = _explicit(tmp_path, url, root, "linux-aarch64", ("archkit-1.0", "python-3.11.9", "postkit-1.0"))
    prefix = tmp_path / "env"
    r = _run(
        "--prefix",
        str(prefix),
        "--lock",
        str(lock),
        "--platform",
        "linux-aarch64",
        "--cache-dir",
        str(tmp_path / "pkgs"),
    )
    assert r.returncode == 0, r.stderr
    assert (prefix / "share/archkit/ARCH").read_text() == "aarch64\n"
    assert (prefix / "bin/python3.11").read_text() == "fake interpreter"
    # The post-link script is linked but never run (it would run aarch64 code here), and said so.
    assert (prefix / "bin/.postkit-post-link.sh").is_file()
    assert not (prefix / "share/postkit-ran").exists()
    warning = [ln for ln in r.stderr.splitlines() if "post-link" in ln]
    assert warning == [
        "install_env: warning: the post-link scripts of postkit were not run (they would run linux-aarch64 "
        "code on this builder); the packages are linked, but what a script would add or change is missing"
    ]
    assert "installed 3 packages" in r.stdout


def test_the_same_package_for_linux_64_is_the_x86_64_build(tmp_path: Path, channel: tuple[str, Path]) -> None:
    url, root = channel
    lock = _explicit(tmp_path, url, root, "linux-64", ("archkit-1.0",))
    prefix = tmp_path / "env"
    r = _run("--prefix", str(prefix), "--lock", str(lock), "--platform", "linux-64")
    assert r.returncode == 0, r.stderr
    assert (prefix / "share/archkit/ARCH").read_text() == "x86_64\n"
    assert "post-link" not in r.stderr


def test_the_post_link_report_names_why_for_the_builders_own_platform_too(tmp_path: Path) -> None:
    ie = fb.install_env_module()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/.b-post-link.sh").write_text("true\n")
    (tmp_path / "bin/.a-post-link.sh").write_text("true\n")
    assert ie.not_run_post_links(str(tmp_path), ["c", "b", "a"]) == ["a", "b"]
    assert "(py-rattler runs no link scripts)" in ie.post_link_message(["a"], "linux-64", False)


def test_manylinux_tags_cover_the_bases_glibc_down_to_the_arches_first() -> None:
    ie = fb.install_env_module()
    tags = ie.manylinux_tags("linux-aarch64", "2.28")
    assert tags[0] == "manylinux_2_28_aarch64" and tags[-2:] == [
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
    ]
    assert len(tags) == 28 - 17 + 1 + 1
    x86 = ie.manylinux_tags("linux-64", "2.17")
    assert {
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "manylinux_2_5_x86_64",
    } <= set(x86)
    assert ie.manylinux_tags("linux-ppc64le", "2.17") == ["manylinux_2_17_ppc64le", "manylinux2014_ppc64le"]


def test_an_unlocked_solve_for_another_platform_takes_its_archspec() -> None:
    ie = fb.install_env_module()
    found = [str(v) for v in ie._virtual_packages("linux-aarch64")]
    assert [v for v in found if "__archspec" in v] == ["__archspec=1=aarch64"]
    assert ie.foreign("linux-aarch64") and not ie.foreign("linux-64")


@dataclass(frozen=True)
class TaggedWheel(fx.WheelDef):
    """A wheel with a platform tag, extra files and console scripts (make_pypi_index builds it)."""

    tag: str = "py3-none-any"
    extra: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)  # name -> module:function

    @property
    def filename(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-{self.tag}.whl"

    def build(self, target: Path) -> Path:
        mod = self.name.replace("-", "_")
        info = f"{mod}-{self.version}.dist-info"
        purelib = "true" if self.tag.endswith("-any") else "false"
        files = {
            f"{mod}/__init__.py": b"def main():\n    print('hi')\n",
            **{k: v.encode() for k, v in self.extra.items()},
            f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n".encode(),
            f"{info}/WHEEL": (
                f"Wheel-Version: 1.0\nGenerator: layerkit-tests\nRoot-Is-Purelib: {purelib}\nTag: {self.tag}\n"
            ).encode(),
        }
        if self.scripts:
            lines = "".join(f"{k} = {v}\n" for k, v in self.scripts.items())
            files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
        record = [f"{p},sha256={_b64(d)},{len(d)}" for p, d in files.items()]
        files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
        path = target / self.filename
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
        return path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


WHEELS = (
    TaggedWheel("fastkit", "1.0", tag="cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64",
                extra={"fastkit/_speed.so": "aarch64 machine code\n"}),
    TaggedWheel("fastkit", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64", extra={"fastkit/_speed.so": "x86_64\n"}),
    TaggedWheel("purekit", "2.0", scripts={"purekit": "purekit:main"}),
    TaggedWheel("newkit", "1.0", tag="cp311-cp311-manylinux_2_38_aarch64"),
)  # fmt: skip


@pytest.fixture(scope="module")
def pypi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = fx.make_pypi_index(tmp_path_factory.mktemp("xpypi"), WHEELS)
    url, stop = fx.serve_directory(root)
    try:
        yield url, root
    finally:
        stop()


def _requirements(tmp: Path, url: str, root: Path, wheels: tuple[TaggedWheel, ...]) -> Path:
    """As Lock.pip_requirements writes them: `name @ url --hash=sha256:...`."""
    lines = [
        f"{w.name} @ {url}/files/{w.filename} --hash=sha256:{_sha256(root / 'files' / w.filename)}"
        for w in wheels
    ]
    path = tmp / "requirements-linux-aarch64.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cross_pip_installs_the_locked_aarch64_and_pure_wheels_into_the_prefix(
    tmp_path: Path, pypi: tuple[str, Path]
) -> None:
    url, root = pypi
    req = _requirements(tmp_path, url, root, (WHEELS[0], WHEELS[2]))
    prefix = tmp_path / "env"
    r = _run(
        "--prefix",
        str(prefix),
        "--platform",
        "linux-aarch64",
        "--pip",
        str(req),
        "--python",
        "3.11",
        "--glibc",
        "2.35",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    site = prefix / "lib/python3.11/site-packages"
    assert (site / "fastkit/_speed.so").read_text() == "aarch64 machine code\n"
    assert (site / "purekit/__init__.py").is_file()
    for dist in ("fastkit-1.0", "purekit-2.0"):
        assert (site / f"{dist}.dist-info/INSTALLER").read_text() == "layerkit\n"
        assert (site / f"{dist}.dist-info/RECORD").is_file()
    script = (prefix / "bin/purekit").read_text()
    assert script.startswith(f"#!{prefix}/bin/python\n") and "from purekit import main" in script
    assert os.access(prefix / "bin/purekit", os.X_OK)
    assert not list(prefix.rglob("__pycache__"))
    assert "installed 2 wheels for linux-aarch64" in r.stdout


def test_cross_pip_refuses_a_wheel_the_base_cannot_run_in_one_line(
    tmp_path: Path, pypi: tuple[str, Path]
) -> None:
    url, root = pypi
    for wheel in (WHEELS[3], WHEELS[1]):  # manylinux_2_38 on a 2.35 base; an x86_64 wheel
        req = _requirements(tmp_path, url, root, (wheel,))
        prefix = tmp_path / "env"
        r = _run(
            "--prefix",
            str(prefix),
            "--platform",
            "linux-aarch64",
            "--pip",
            str(req),
            "--python",
            "3.11",
            "--glibc",
            "2.35",
        )
        assert r.returncode == 1
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith(
            f"install_env: no wheel of {wheel.filename} for linux-aarch64 (CPython 3.11, manylinux up to glibc 2.35)"
        ), r.stderr
        assert not (prefix / "lib").exists()


def test_cross_pip_refuses_a_changed_wheel(tmp_path: Path, pypi: tuple[str, Path]) -> None:
    url, _root = pypi
    req = tmp_path / "requirements-linux-aarch64.txt"
    req.write_text(f"purekit @ {url}/files/{WHEELS[2].filename} --hash=sha256:{'0' * 64}\n")
    r = _run(
        "--prefix",
        str(tmp_path / "env"),
        "--platform",
        "linux-aarch64",
        "--pip",
        str(req),
        "--python",
        "3.11",
        "--glibc",
        "2.35",
    )
    assert r.returncode == 1 and "THESE PACKAGES DO NOT MATCH THE HASHES" in r.stderr
    assert not (tmp_path / "env").exists()
