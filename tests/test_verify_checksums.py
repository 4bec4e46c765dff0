"""Issue 15 §2, without an engine: what the env stage is given to verify each package against
the lock (the explicit file's checksums, pip's hashes), and templates/install_env.py's check
run for real against a served channel whose file changed after locking (py-rattler on this
host, as the env stage runs it)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import fixtures_build as fb
import fixtures_channels as fx
import pytest
from rattler.index import index_fs

from layerkit import api
from layerkit.errors import SpecError
from layerkit.lock.model import Lock, LockedPackage
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

SHA, MD5 = "a" * 64, "b" * 32
URL = "https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311_0.conda"


def checked(installer: str, pip: str = "") -> Checked:
    text = (
        "name: e\nbase: {flavour: cpu-ubuntu22.04}\n"
        f"conda: {{channels: [conda-forge], installer: {installer}, dependencies: [python=3.11, numpy=1.26]{pip}}}\n"
    )
    return check(resolve(load_text(text, "spec.yaml")))


def conda_pkg(**kw: str | None) -> LockedPackage:
    fields: dict[str, str | None] = {"sha256": SHA, "md5": MD5, **kw}
    return LockedPackage(
        manager="conda",
        platform="linux-64",
        name="numpy",
        version="1.26.4",
        build="py311_0",
        url=URL,
        **fields,
    )


def pip_pkg(sha256: str | None) -> LockedPackage:
    url = "https://files.example/tinypip-1.0-py3-none-any.whl"
    return LockedPackage(
        manager="pip", platform="linux-64", name="tinypip", version="1.0", url=url, sha256=sha256
    )


def lock(*pkgs: LockedPackage) -> Lock:
    return Lock(source="spec.conda-lock.yml", packages=pkgs)


@pytest.mark.parametrize(
    ("installer", "fragment"),
    [("rattler", f"#sha256:{SHA}"), ("conda", f"#sha256:{SHA}"), ("micromamba", f"#{MD5}")],
)
def test_the_explicit_file_keeps_the_checksum_each_installer_verifies(installer: str, fragment: str) -> None:
    r = api.render(checked(installer), lock(conda_pkg()), auto_lock=False)
    assert f"{URL}{fragment}\n" in r.files["conda-linux-64.lock"]


def test_the_other_checksum_where_the_lock_has_only_that() -> None:
    md5_only = api.render(checked("rattler"), lock(conda_pkg(sha256=None)), auto_lock=False)
    assert f"{URL}#{MD5}\n" in md5_only.files["conda-linux-64.lock"]
    sha_only = api.render(checked("conda"), lock(conda_pkg(md5=None)), auto_lock=False)
    assert f"{URL}#sha256:{SHA}\n" in sha_only.files["conda-linux-64.lock"]
    # micromamba 1.5 takes whatever follows `#` for an md5: a sha256 alone it cannot verify.
    with pytest.raises(
        SpecError, match=r"conda package numpy 1\.26\.4 no md5 \(all micromamba 1\.5 verifies\)"
    ):
        api.render(checked("micromamba"), lock(conda_pkg(md5=None)), auto_lock=False)
    # `layerkit lock`'s own explicit file stays md5-first, as conda-lock writes it.
    assert lock(conda_pkg()).explicit("linux-64").endswith(f"{URL}#{MD5}\n")


def test_a_locked_package_without_a_checksum_is_refused_at_render() -> None:
    with pytest.raises(SpecError, match=r"conda package numpy 1\.26\.4 no sha256 or md5, so") as exc:
        api.render(checked("rattler"), lock(conda_pkg(sha256=None, md5=None)), auto_lock=False)
    assert str(exc.value.location) == "spec.conda-lock.yml"
    pip = ", pip: [tinypip==1.0]"
    with pytest.raises(SpecError, match=r"pip package tinypip 1\.0 no sha256, so"):
        api.render(checked("rattler", pip), lock(conda_pkg(), pip_pkg(None)), auto_lock=False)


def test_pip_installs_the_locked_wheels_by_hash() -> None:
    r = api.render(
        checked("rattler", ", pip: [tinypip==1.0]"), lock(conda_pkg(), pip_pkg("c" * 64)), auto_lock=False
    )
    req = r.files["requirements-linux-64.txt"]
    assert f"tinypip @ https://files.example/tinypip-1.0-py3-none-any.whl --hash=sha256:{'c' * 64}\n" in req
    assert "--no-deps --require-hashes -r requirements-linux-64.txt" in r.dockerfile


def test_install_env_reads_each_lines_checksum_and_refuses_a_line_without(tmp_path: Path) -> None:
    ie = fb.install_env_module()
    f = tmp_path / "conda-linux-64.lock"
    f.write_text(
        f"# platform: linux-64\n@EXPLICIT\n{URL}#sha256:{SHA}\n{URL}#{MD5}\n{URL}#sha256={SHA}\n{URL}#{SHA}\n"
    )
    assert ie._explicit_entries(str(f)) == [
        (URL, SHA, None),
        (URL, None, MD5),
        (URL, SHA, None),
        (URL, SHA, None),
    ]
    f.write_text(f"@EXPLICIT\n{URL}\n")
    with pytest.raises(SystemExit, match=r"no sha256 or md5 for numpy-1\.26\.4-py311_0\.conda"):
        ie._explicit_entries(str(f))


def _publish(channel: Path, payload: bytes) -> tuple[str, str]:
    pkg = fx.PkgDef("tamperkit", "1.0", "h0_0")
    fb._write_package(channel, pkg, {"share/tamperkit/ID": payload})
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))
    data = (channel / pkg.subdir / pkg.filename).read_bytes()
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("kind", ["sha256", "md5"])
def test_install_env_installs_the_locked_file_and_refuses_another_under_its_name(
    tmp_path: Path, kind: str
) -> None:
    """The channel's repodata agrees with the changed file: only the lock can tell."""
    import rattler

    ie = fb.install_env_module()
    channel = tmp_path / "channel"
    (channel / "noarch").mkdir(parents=True)
    sha, md5 = _publish(channel, b"locked\n")
    url, stop = fx.serve_directory(channel)
    try:
        pkg_url = f"{url}/linux-64/tamperkit-1.0-h0_0.tar.bz2"
        entry = (pkg_url, sha, None) if kind == "sha256" else (pkg_url, None, md5)

        def install(prefix: str, cache: str) -> bytes:
            records = asyncio.run(ie._records_for([entry], "linux-64"))
            # The lock's checksum is the only one rattler gets: with kind "md5" the record has no
            # sha256 at all, so the refusal below proves py-rattler 0.28 (the env stage's)
            # verifies md5 when sha256 is absent, and an md5-only lock line is safe to install.
            pinned = (records[0].sha256, records[0].md5)
            assert pinned == ((bytes.fromhex(sha), None) if kind == "sha256" else (None, bytes.fromhex(md5)))
            target, pkgs = tmp_path / prefix, tmp_path / cache
            asyncio.run(
                rattler.install(records, target_prefix=str(target), cache_dir=str(pkgs), show_progress=False)
            )
            return (target / "share/tamperkit/ID").read_bytes()

        assert install("good", "pkgs") == b"locked\n"
        bad_sha, bad_md5 = _publish(channel, b"changed\n")
        # A package cache that holds the locked file serves it (rattler checks it against the
        # lock's checksum too); a download gets the changed file, which the lock refuses.
        assert install("cached", "pkgs") == b"locked\n"
        with pytest.raises(Exception) as exc:
            install("bad", "cold-pkgs")
        line = ie.mismatch_message(str(exc.value))
        assert line is not None and "\n" not in line
        want, got = (sha, bad_sha) if kind == "sha256" else (md5, bad_md5)
        assert line.startswith(
            f"install_env: tamperkit-1.0-h0_0.tar.bz2 is not the locked package: expected {kind} {want}, got {got}"
        )
        assert not (tmp_path / "bad/share/tamperkit/ID").exists()
    finally:
        stop()


def test_mismatch_message_leaves_other_errors_alone() -> None:
    ie = fb.install_env_module()
    assert ie.mismatch_message("failed to fetch x\nCaused by: 404 Not Found") is None


def test_an_explicit_lock_reads_every_checksum_form_conda_writes() -> None:
    from layerkit.lock.explicit import parse_explicit

    text = f"@EXPLICIT\n{URL}#{MD5}\n{URL}#sha256:{SHA}\n{URL}#{SHA}\n"
    got = [(p.sha256, p.md5) for p in parse_explicit(text, "x.txt").packages]
    assert got == [(None, MD5), (SHA, None), (SHA, None)]
    with pytest.raises(SpecError, match="bad checksum after '#'") as exc:
        parse_explicit(f"@EXPLICIT\n{URL}#sha256:{MD5}\n", "x.txt")
    assert str(exc.value.location) == f"x.txt:2:{len(URL) + 2}"
