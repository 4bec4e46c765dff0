"""The env stage is made in its own installer image, never on the base (issue 11, section 1):
pinned, mirrored and hashed; the base's glibc checked against the lock; conda and micromamba
follow the same design (their pinned download checked by templates/fetch_installer.py)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import fixtures_channels as fx
import pytest

from layerkit import api
from layerkit.errors import SpecError
from layerkit.lock.model import Lock, LockedPackage
from layerkit.lock.unified import parse_unified
from layerkit.resources import data_dir
from layerkit.spec.catalog import load_catalog
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

INSTALLER = load_catalog().installer_image
DEPS = "conda: {channels: [conda-forge], dependencies: [python=3.11, numpy=1.26]}\n"


def checked(text: str) -> Checked:
    return check(resolve(load_text("name: e\n" + text, "spec.yaml")))


def lock(glibc: str | None = "2.17", digests: tuple[tuple[str, str], ...] = ()) -> Lock:
    pkg = LockedPackage(
        manager="conda", platform="linux-64", name="numpy", version="1.26.4", build="py311_0",
        url="https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311_0.conda",
        sha256="0" * 64, glibc=glibc,
    )  # fmt: skip
    return Lock(source="spec.conda-lock.yml", packages=(pkg,), base_digests=digests)


def stage(dockerfile: str, name: str) -> str:
    return dockerfile.split(f" AS {name}\n", 1)[1].split("\nFROM ", 1)[0]


def test_the_env_stage_starts_from_the_pinned_installer_image_not_the_base() -> None:
    for base in ("base: {flavour: cpu-ubuntu16.04}\n", "base: {image: 'registry.example/ml/azure-like:1'}\n"):
        r = api.render(checked(base + DEPS), auto_lock=False)
        assert f"FROM --platform=$BUILDPLATFORM {INSTALLER.pinned} AS env\n" in r.dockerfile
        env = stage(r.dockerfile, "env")
        assert "apt-get" not in env and "python3 -m venv /opt/installer" in env
        assert "COPY --link --from=env /opt/env /opt/env" in stage(r.dockerfile, "runtime")


def test_the_installer_image_is_mirrored_and_a_floating_one_is_pinned_by_the_lock() -> None:
    mirrored = api.render(checked(DEPS + "mirrors: {base_registry: 'hub.internal:5000'}\n"), auto_lock=False)
    assert (
        f"FROM --platform=$BUILDPLATFORM hub.internal:5000/library/{INSTALLER.pinned} AS env"
        in mirrored.dockerfile
    )
    # A mirror changes where, not what: the hash stays.
    plain = api.hash_spec(checked(DEPS), auto_lock=False).hash
    assert (
        api.hash_spec(checked(DEPS + "mirrors: {base_registry: 'hub.internal:5000'}\n"), auto_lock=False).hash
        == plain
    )

    own = checked(DEPS.replace("dependencies", "installer_image: 'site.internal/py:3.12', dependencies"))
    digest = "sha256:" + "a" * 64
    pinned = api.render(own, lock(digests=(("site.internal/py:3.12", digest),)), auto_lock=False)
    assert f"FROM --platform=$BUILDPLATFORM site.internal/py:3.12@{digest} AS env" in pinned.dockerfile
    other = api.render(own, lock(digests=(("site.internal/py:3.12", "sha256:" + "b" * 64),)), auto_lock=False)
    assert pinned.hash.hash != other.hash.hash  # a moved installer image is a new environment
    assert pinned.hash.stages["env"] != other.hash.stages["env"]
    assert pinned.hash.stages["base"] == other.hash.stages["base"]


def test_an_env_change_leaves_the_base_stage_hash_and_a_base_change_the_env_stage_hash() -> None:
    a = api.hash_spec(checked("base: {flavour: cpu-ubuntu22.04}\n" + DEPS), lock("2.17"), auto_lock=False)
    apt = api.hash_spec(
        checked("base: {flavour: cpu-ubuntu22.04}\napt: [jq]\n" + DEPS), lock("2.17"), auto_lock=False
    )
    assert a.stages["env"] == apt.stages["env"] and a.stages["base"] != apt.stages["base"]
    # A new package is a new file: the build reads only its URL and checksum.
    new = {"version": "1.26.5", "url": lock().packages[0].url.replace("1.26.4", "1.26.5"), "sha256": "1" * 64}
    relocked = Lock(source="x", packages=(lock().packages[0].model_copy(update=new),))
    b = api.hash_spec(checked("base: {flavour: cpu-ubuntu22.04}\n" + DEPS), relocked, auto_lock=False)
    assert a.stages["base"] == b.stages["base"] and a.stages["env"] != b.stages["env"]


def test_a_catalog_base_with_an_older_glibc_than_the_lock_needs_is_refused_at_render() -> None:
    spec = checked("base: {flavour: cpu-ubuntu16.04}\n" + DEPS)
    with pytest.raises(SpecError) as err:
        api.render(spec, lock("2.28"), auto_lock=False)
    assert "need glibc >= 2.28" in err.value.message and "ubuntu16.04" in err.value.message
    assert err.value.location is not None and err.value.location.line == 2  # base.flavour
    ok = api.render(spec, lock("2.17"), auto_lock=False)  # 2.23 >= 2.17: no build-time check
    assert "GNU_LIBC_VERSION" not in ok.dockerfile


def test_a_base_the_catalog_does_not_know_gets_its_glibc_checked_by_the_build() -> None:
    r = api.render(
        checked("base: {image: 'registry.example/ml/own:1'}\n" + DEPS), lock("2.28"), auto_lock=False
    )
    runtime = stage(r.dockerfile, "runtime")
    check_at, copy_at = runtime.index("getconf GNU_LIBC_VERSION"), runtime.index("COPY --link --from=env")
    assert check_at < copy_at and "need glibc >= 2.28" in runtime
    # The requirement is part of the lock, so the hash already names it: a lock needing
    # another glibc is another lock.
    assert api.render(
        checked("base: {image: 'registry.example/ml/own:1'}\n" + DEPS), lock(None), auto_lock=False
    )


def test_the_lock_reads_each_packages_glibc_floor() -> None:
    doc = {
        "version": 1, "metadata": {},
        "package": [
            {"name": n, "version": "1", "manager": "conda", "platform": "linux-64", "hash": {"sha256": "0" * 64},
             "url": f"https://c/linux-64/{n}-1-h0.conda", "dependencies": deps}
            for n, deps in (("a", {"__glibc": ">=2.17,<3.0.a0"}), ("b", {"__glibc": ">=2.28"}), ("c", {}))
        ],
    }  # fmt: skip
    parsed = parse_unified(doc, "x.yml")
    assert [p.glibc for p in parsed.packages] == ["2.17", "2.28", None]
    assert parsed.min_glibc("linux-64") == "2.28"


def test_the_base_search_paths_are_extended_never_replaced() -> None:
    r = api.render(checked("base: {flavour: openmpi3.1.2-ubuntu16.04}\n" + DEPS), auto_lock=False)
    env = dict(r.plan.env)
    assert (
        env["PATH"]
        == '"/opt/env/bin:/opt/mpi/bin:${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"'
    )
    assert env["LD_LIBRARY_PATH"] == '"/opt/mpi/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"'
    # A value the spec sets is the user's: it replaces, quoted, with no expansion.
    own = api.render(
        checked("base: {flavour: cpu-ubuntu22.04}\nenv: {PATH: '/x:$PATH'}\n" + DEPS), auto_lock=False
    )
    assert dict(own.plan.env)["PATH"] == '"/x:\\$PATH"'


@pytest.mark.parametrize("installer", ["conda", "micromamba"])
def test_conda_and_micromamba_install_in_the_installer_image_with_a_checked_download(installer: str) -> None:
    r = api.render(checked(DEPS.replace("conda: {", f"conda: {{installer: {installer}, ")), auto_lock=False)
    env = stage(r.dockerfile, "env")
    entry = load_catalog().installer("miniconda" if installer == "conda" else "micromamba")
    assert entry is not None and entry.linux_64.sha256
    assert f'python3 fetch_installer.py "{entry.linux_64.url}" sha256 {entry.linux_64.sha256}' in env
    assert "wget" not in env and "apt-get" not in env  # the installer image has Python, not wget
    assert dict(r.files)["fetch_installer.py"] == (data_dir("templates") / "fetch_installer.py").read_text()


def _fetch(
    url: str, algorithm: str, digest: str, out: Path, *extract: str
) -> subprocess.CompletedProcess[str]:
    script = str(data_dir("templates") / "fetch_installer.py")
    cmd = [sys.executable, script, url, algorithm, digest, str(out), *extract]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_fetch_installer_keeps_a_matching_download_and_refuses_another(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tf:
        data = b"#!/bin/sh\necho micromamba\n"
        info = tarfile.TarInfo("bin/micromamba")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (served / "micromamba.tar.bz2").write_bytes(buf.getvalue())
    good = hashlib.sha256(buf.getvalue()).hexdigest()
    url, stop = fx.serve_directory(served)
    try:
        dest = tmp_path / "usr/local/bin/micromamba"
        r = _fetch(
            f"{url}/micromamba.tar.bz2", "sha256", good, tmp_path / "m.tar.bz2", "bin/micromamba", str(dest)
        )
        assert r.returncode == 0, r.stderr
        assert dest.read_bytes() == data and dest.stat().st_mode & 0o111
        assert not (tmp_path / "m.tar.bz2").exists()
        bad = _fetch(f"{url}/micromamba.tar.bz2", "sha256", "f" * 64, tmp_path / "x.tar.bz2")
        assert bad.returncode != 0 and f"has sha256 {good}, expected {'f' * 64}" in bad.stderr
        assert not (tmp_path / "x.tar.bz2").exists()  # nothing unverified is left behind
    finally:
        stop()


def test_pip_in_the_installer_image_takes_only_wheels_the_bases_glibc_runs(tmp_path: Path) -> None:
    """The rendered _manylinux.py, on PYTHONPATH as the env stage's pip RUN puts it, makes real
    pip drop manylinux tags newer than the base's glibc (PEP 600), whatever this machine has."""
    out = tmp_path / "ctx"
    api.write_context(
        api.render(
            checked("base: {flavour: cpu-ubuntu16.04}\n" + DEPS.replace("]}", "], pip: [requests==2.32.3]}")),
            auto_lock=False,
        ),
        out,
    )
    assert "BASE_GLIBC = (2, 23)" in (out / "_manylinux.py").read_text()
    env = {"PYTHONPATH": str(out), "PATH": "/usr/bin:/bin"}
    tags = subprocess.run(
        [sys.executable, "-m", "pip", "debug", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "manylinux_2_23_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_24_x86_64" not in tags and "manylinux_2_28_x86_64" not in tags
