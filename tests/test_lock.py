"""`layerkit lock` end to end: real conda-lock, the embedded py-rattler solver, local
channels served on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_channels as fx
import pytest
from fixtures_services import refused_port

from layerkit import api
from layerkit.lock.explicit import parse_explicit

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lock_sandbox")]


def spec_file(tmp: Path, url: str, deps: list[str], extra: str = "") -> Path:
    path = tmp / "env.yaml"
    body = "".join(f"    - {d}\n" for d in deps)
    path.write_text(f"name: locktest\nconda:\n  channels: ['{url}']\n  dependencies:\n{body}{extra}")
    return path


def conda_pkgs(lockfile: Path) -> dict[str, str]:
    return {
        p.name: p.url.rsplit("/", 1)[-1] for p in api.read_lock(lockfile).packages if p.manager == "conda"
    }


def test_lock_writes_unified_lock_and_explicit_files(cli, channel: tuple[Path, str], tmp_path: Path) -> None:
    root, url = channel
    spec = spec_file(tmp_path, url, ["python=3.11", "mlkit", "datakit=1.0"])
    r = cli("lock", spec, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    lockfile = tmp_path / "env.conda-lock.yml"
    assert doc["lockfile"] == str(lockfile)
    assert conda_pkgs(lockfile) == {
        "python": "python-3.11.9-h0_0.tar.bz2",
        "mlkit": "mlkit-1.0-cpu_0.tar.bz2",  # no __cuda for a CPU spec
        "datakit": "datakit-1.0-h0_0.tar.bz2",
        "corelib": "corelib-1.5-h0_0.tar.bz2",  # datakit 1.0 needs corelib <2
    }
    # conda-lock itself parses what it wrote, and our spec hash is in its metadata.
    from conda_lock.lockfile import parse_conda_lock_file

    parsed = parse_conda_lock_file(lockfile)
    assert len(parsed.package) == 4
    assert doc["spec_hash"] == parsed.metadata.custom_metadata["layerkit_spec_hash"]
    # The explicit file lists exactly the lock's URLs and md5s, and they match the archives.
    explicit = (tmp_path / "env.linux-64.explicit.txt").read_text().splitlines()
    assert "@EXPLICIT" in explicit
    urls = {ln.split("#")[0]: ln.split("#")[1] for ln in explicit if ln.startswith("http")}
    assert urls == {p.url: p.hash.md5 for p in parsed.package}
    import hashlib

    for u, md5 in urls.items():
        assert hashlib.md5((root / u.removeprefix(url + "/")).read_bytes()).hexdigest() == md5


def test_gpu_spec_gets_cuda_build(cli, channel: tuple[Path, str], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, channel[1], ["python=3.11", "mlkit"], "features:\n  gpu: {cuda: '12.4'}\n")
    assert cli("lock", spec).code == 0
    assert conda_pkgs(tmp_path / "env.conda-lock.yml")["mlkit"] == "mlkit-1.0-cuda_0.tar.bz2"


def test_cuda_flavour_without_gpu_feature_gets_cuda_build(
    cli, channel: tuple[Path, str], tmp_path: Path
) -> None:
    """The flavour's CUDA is the lock's __cuda (issue 11, section 4): no CPU builds on a GPU base."""
    extra = "base: {flavour: cuda12.1-cudnn8-ubuntu22.04}\n"
    spec = spec_file(tmp_path, channel[1], ["python=3.11", "mlkit"], extra)
    r = cli("lock", spec)
    assert r.code == 0, r.err
    assert conda_pkgs(tmp_path / "env.conda-lock.yml")["mlkit"] == "mlkit-1.0-cuda_0.tar.bz2"


def test_check_sees_fresh_and_stale_without_network(cli, tmp_path: Path) -> None:
    root = fx.make_channel(tmp_path / "chan", fx.default_packages())
    url, stop = fx.serve_channel(root)
    try:
        layer = tmp_path / "team.yaml"
        layer.write_text("env: {A: '1'}\n")
        spec = spec_file(tmp_path, url, ["python=3.11", "toolz"], "extends: [team.yaml]\n")
        assert cli("lock", spec).code == 0
    finally:
        stop()  # --check must not need the channel
    fresh = cli("lock", spec, "--check")
    assert fresh.code == 0, fresh.err
    layer.write_text("env: {A: '2'}\n")  # env vars do not change what gets locked
    assert cli("lock", spec, "--check").code == 0
    layer.write_text("conda:\n  dependencies: [corelib]\n")
    stale = cli("lock", spec, "--check")
    assert stale.code == 1 and "is stale" in stale.err and "layerkit lock" in stale.err
    missing = cli("lock", spec, "--check", "--lockfile", tmp_path / "nope.yml")
    assert missing.code == 1 and "no lockfile" in missing.err


def test_update_moves_only_named_package(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = [
        p
        for p in fx.default_packages()
        if (p.name, p.version) not in {("datakit", "1.1"), ("corelib", "2.1"), ("toolz", "0.12")}
    ]
    root = fx.make_channel(tmp_path / "chan", old)
    url, stop = fx.serve_channel(root)
    try:
        spec = spec_file(tmp_path, url, ["python=3.11", "datakit", "toolz"])
        assert cli("lock", spec).code == 0
        lockfile = tmp_path / "env.conda-lock.yml"
        before = conda_pkgs(lockfile)
        assert (
            before["datakit"] == "datakit-1.0-h0_0.tar.bz2" and before["toolz"] == "toolz-0.11-pyh_0.tar.bz2"
        )
        fx.make_channel(root, fx.default_packages())  # newer datakit, corelib and toolz appear
        # rattler may serve repodata from its HTTP cache within the freshness window.
        monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler-cache-2"))
        r = cli("lock", spec, "--update", "datakit")
        assert r.code == 0, r.err
        after = conda_pkgs(lockfile)
        assert after["datakit"] == "datakit-1.1-h0_0.tar.bz2"
        assert after["corelib"] == "corelib-2.1-h0_0.tar.bz2"  # dragged along by datakit 1.1
        assert after["toolz"] == before["toolz"]  # not named: stays
    finally:
        stop()


def test_locked_hash_and_render(cli, channel: tuple[Path, str], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, channel[1], ["python=3.11", "toolz"])
    unlocked = api.hash_spec(spec).hash
    assert cli("lock", spec).code == 0
    locked = api.hash_spec(spec)
    assert locked.hash != unlocked
    assert (
        "conda-linux-64.lock" in locked.parts["context"]
        and "/toolz-" in api.render(spec).files["conda-linux-64.lock"]
    )
    assert api.hash_spec(spec, auto_lock=False).hash == unlocked
    rendered = api.render(spec)
    assert rendered.plan.env_install is not None and rendered.plan.env_install.locked
    assert "--lock conda-linux-64.lock" in rendered.dockerfile
    # The same packages as the exported explicit file; the context's with the lock's sha256
    # (what install_env.py verifies), the export's with md5 (what every conda reads).
    exported = api.read_lock(tmp_path / "env.linux-64.explicit.txt").packages
    context = parse_explicit(rendered.files["conda-linux-64.lock"], "ctx").packages
    by_url = {p.url: p for p in api.read_lock(tmp_path / "env.conda-lock.yml").packages}
    assert [p.url for p in context] == [p.url for p in exported] and context
    assert all(p.sha256 == by_url[p.url].sha256 and p.sha256 and not p.md5 for p in context)
    assert all(p.md5 == by_url[p.url].md5 and p.md5 for p in exported)


def test_channel_alias(cli, tmp_path: Path) -> None:
    fx.make_channel(tmp_path / "srv" / "mychan", fx.default_packages())
    alias, stop = fx.serve_directory(tmp_path / "srv")
    try:
        spec = tmp_path / "env.yaml"
        spec.write_text(
            f"conda:\n  channels: [mychan]\n  dependencies: [python=3.11]\nmirrors:\n  channel_alias: '{alias}'\n"
        )
        r = cli("lock", spec)
        assert r.code == 0, r.err
    finally:
        stop()
    urls = [p.url for p in api.read_lock(tmp_path / "env.conda-lock.yml").packages]
    assert urls and all(u.startswith(f"{alias}/mychan/") for u in urls)


def test_mirrored_channel_name(cli, channel: tuple[Path, str], tmp_path: Path) -> None:
    spec = tmp_path / "env.yaml"
    spec.write_text(
        "conda:\n  channels: [internal]\n  dependencies: [python=3.11, corelib=1.5]\n"
        f"mirrors:\n  channels: {{internal: '{channel[1]}'}}\n"
    )
    assert cli("lock", spec).code == 0
    urls = [p.url for p in api.read_lock(tmp_path / "env.conda-lock.yml").packages]
    assert urls and all(u.startswith(channel[1] + "/") for u in urls)


def test_failures_keep_the_old_lock(cli, channel: tuple[Path, str], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, channel[1], ["python=3.11"])
    assert cli("lock", spec).code == 0
    lockfile = tmp_path / "env.conda-lock.yml"
    before = lockfile.read_bytes()
    unsolvable = cli("lock", spec_file(tmp_path, channel[1], ["python=3.11", "broken"]))
    assert unsolvable.code == 2, unsolvable.err
    assert "cannot be solved" in unsolvable.err and "Traceback" not in unsolvable.err
    down = cli("lock", spec_file(tmp_path, "http://127.0.0.1:9", ["python=3.11"]))
    assert down.code == 3 and "network failure" in down.err and "Connection refused" in down.err, down.err
    missing = cli("lock", spec_file(tmp_path, channel[1] + "/nosuch", ["python=3.11"]))
    assert missing.code == 2 and "channel could not be found" in missing.err, missing.err
    assert "CalledProcessError" not in down.err + missing.err + unsolvable.err
    assert lockfile.read_bytes() == before
    assert not list(tmp_path.glob(".layerkit-lock-*"))


def test_check_loads_no_solver(channel: tuple[Path, str], tmp_path: Path) -> None:
    """--check never imports conda-lock or py-rattler (its speed is measured in bench/)."""
    spec = spec_file(tmp_path, channel[1], ["python=3.11"])
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "layerkit", "lock", str(spec)], check=True, capture_output=True)
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "layerkit", "lock", "--check", str(spec)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "conda_lock" not in r.stderr and "rattler" not in r.stderr

    def imports(*args: str) -> str:
        p = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "layerkit", *args], capture_output=True, text=True
        )
        assert p.returncode == 0, p.stderr
        return p.stderr

    # render and hash of a fresh lock's spec skip the solver's grammar as --check does ...
    assert "rattler" not in imports("render", str(spec)) and "rattler" not in imports("hash", str(spec))
    # ... and hold the spec to it once the lock no longer vouches for its specs.
    assert "rattler" in imports("render", "--no-lock", str(spec))
    spec_file(tmp_path, channel[1], ["python=3.11", "toolz"])
    assert "rattler" in imports("hash", str(spec))


def test_render_warns_on_stale_lock(cli, channel: tuple[Path, str], tmp_path: Path) -> None:
    spec = spec_file(tmp_path, channel[1], ["python=3.11"])
    assert cli("lock", spec).code == 0
    assert "stale" not in cli("render", spec).err
    spec_file(tmp_path, channel[1], ["python=3.11", "toolz"])
    r = cli("render", spec)
    assert r.code == 0 and "the lock is stale" in r.err


def test_pip_dependencies_through_a_pypi_mirror(cli, channel: tuple[Path, str], tmp_path: Path) -> None:
    index = fx.make_pypi_index(
        tmp_path / "pypi", [fx.WheelDef("tinypip", "1.0", ["tinydep>=1"]), fx.WheelDef("tinydep", "1.2")]
    )
    pypi_url, stop = fx.serve_directory(index)
    try:
        extra = f"  pip: [tinypip]\nmirrors:\n  pypi_index: '{pypi_url}/simple'\n"
        spec = spec_file(tmp_path, channel[1], ["python=3.11"], extra)
        r = cli("lock", spec)
        assert r.code == 0, r.err
    finally:
        stop()
    lk = api.read_lock(tmp_path / "env.conda-lock.yml")
    pip = {p.name: p for p in lk.packages if p.manager == "pip"}
    assert {n: p.version for n, p in pip.items()} == {"tinypip": "1.0", "tinydep": "1.2"}
    assert all(p.sha256 and p.url.startswith(pypi_url) for p in pip.values())
    rendered = api.render(spec)
    req = rendered.files["requirements-linux-64.txt"]
    assert f"--hash=sha256:{pip['tinydep'].sha256}" in req
    assert "--no-deps --require-hashes -r requirements-linux-64.txt" in rendered.dockerfile
    assert f"--index-url {pypi_url}/simple" in rendered.dockerfile


def test_python_api_lock_returns_the_lock_and_its_explicit_files(
    channel: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = channel
    down = f"127.0.0.1:{refused_port()}/nowhere/base:1"
    spec = spec_file(tmp_path, url, ["python=3.11", "datakit=1.0"], f"base: {{image: '{down}'}}\n")
    warnings: list[str] = []
    lk, explicit = api.lock(spec, on_warning=warnings.append)
    assert lk.source == str(tmp_path / "env.conda-lock.yml")
    assert {p.name for p in lk.packages} == {"python", "datakit", "corelib"}
    assert explicit == [tmp_path / "env.linux-64.explicit.txt"]

    def ident(path: Path) -> set[tuple[str, str, str, str | None]]:
        return {(p.name, p.version, p.url, p.md5) for p in api.read_lock(path).packages}

    assert ident(explicit[0]) == ident(Path(lk.source))
    # An unreachable base registry: a warning, no failure, the base stays floating.
    assert lk.base_digests == () and any(f"base image {down} is not pinned" in w for w in warnings)


def test_channel_qualified_spec_locks_from_its_channel(
    cli, channel: tuple[Path, str], tmp_path: Path
) -> None:
    """A URL-qualified spec locks (conda-lock passes it on as `<last path part>::datakit`)."""
    _, url = channel
    spec = spec_file(tmp_path, url, ["python=3.11", f"{url}::datakit=1.0"])
    r = cli("lock", spec)
    assert r.code == 0, r.err
    assert conda_pkgs(tmp_path / "env.conda-lock.yml")["datakit"].startswith("datakit-1.0")


def test_conda_lock_keys_of_an_environment_yml_lock(
    cli, channel: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: an environment.yml written for conda-lock (platforms, pip-repositories with
    $NAME credentials, allow-pypi-requests: false) locks from that index only, and the
    credentials' values reach neither the lock nor layerkit's output."""
    index = fx.make_pypi_index(tmp_path / "pypi", [fx.WheelDef("tinypip", "1.0")])
    pypi_url, stop = fx.serve_directory(index)
    host = pypi_url.split("://", 1)[1]
    monkeypatch.setenv("PIP_USER", "deploy")
    monkeypatch.setenv("PIP_PASSWORD", "s3cret-value")
    spec = tmp_path / "environment.yml"
    spec.write_text(
        f"channels:\n  - {channel[1]}\nplatforms:\n  - linux-64\n  - osx-arm64\n"
        f"allow-pypi-requests: false\npip-repositories:\n  - http://$PIP_USER:$PIP_PASSWORD@{host}/simple\n"
        "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - tinypip\n"
    )
    try:
        # --no-pin-base: pinning plans the image, and the image cannot be built with pip
        # credentials until BuildKit secrets land (render refuses them today).
        r = cli("lock", "--no-pin-base", spec)
    finally:
        stop()
    assert r.code == 0, r.err
    lockfile = tmp_path / "environment.conda-lock.yml"
    lk = api.read_lock(lockfile)
    assert lk.platforms == ("linux-64",)
    pip = [p for p in lk.packages if p.manager == "pip"]
    assert [(p.name, p.version) for p in pip] == [("tinypip", "1.0")]
    assert "s3cret-value" not in lockfile.read_text() + r.err + r.out


def test_a_channel_only_a_spec_names_is_added_after_the_listed_ones(
    cli, channel: tuple[Path, str], tmp_path: Path
) -> None:
    """Issue 19: conda's Solver._prepare (conda/core/solve.py) appends the channel of a
    channel-qualified spec that `channels:` does not list; py-rattler adds none, so layerkit
    lists it for conda-lock and the solver, after the listed channels."""
    other = fx.make_channel(tmp_path / "other", [fx.PkgDef("extrakit", "0.5", "h0_0", depends=["corelib"])])
    other_url, stop = fx.serve_channel(other)
    try:
        spec = spec_file(tmp_path, channel[1], ["python=3.11", f"{other_url}::extrakit >= 0.5, < 1"])
        r = cli("lock", spec)
        assert r.code == 0, r.err
        assert f"names the channel '{other_url}', which channels: does not list" in r.err
    finally:
        stop()
    pkgs = {p.name: p.url for p in api.read_lock(tmp_path / "env.conda-lock.yml").packages}
    assert pkgs["extrakit"].startswith(other_url + "/linux-64/")
    assert pkgs["corelib"].startswith(channel[1] + "/")  # the listed channel first


def test_an_unnamed_python_is_the_newest_the_packages_allow(
    cli, channel: tuple[Path, str], tmp_path: Path
) -> None:
    """Issue 19: no python spec on a catalog base adds `python` unpinned: the solve picks the
    newest Python the packages allow (toolz 0.11 allows 3.10 and 3.11; the channel has both)."""
    spec = spec_file(tmp_path, channel[1], ["toolz=0.11"])
    r = cli("lock", spec)
    assert r.code == 0, r.err
    assert conda_pkgs(tmp_path / "env.conda-lock.yml")["python"] == "python-3.11.9-h0_0.tar.bz2"
