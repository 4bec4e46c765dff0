"""The embedded conda shim: its CLI/JSON contract, and real conda-lock driving it end to end.

The shim always runs as a subprocess here, as conda-lock runs it: py-rattler may abort in
interpreter teardown after a solve, which in-process would take pytest down with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fixtures_channels as fx
import pytest

from layerkit.lock.shim_launcher import shim_executable

SUBDIR = "linux-64"


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shim_executable(tmp_path_factory.mktemp("shim-bin"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment minus conda knobs, with a private repodata cache."""
    drop = ("CONDA_OVERRIDE_", "CONDA_SUBDIR", "CONDA_CHANNEL_PRIORITY", "CONDA_FLAGS", "CONDA_PKGS_DIRS")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**clean, "RATTLER_CACHE_DIR": str(tmp_path / "rattler-cache"), "CONDA_SUBDIR": SUBDIR}


def run_shim(shim: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(shim), *args], env=env, capture_output=True, text=True, timeout=120)


def dry_run(shim: Path, env: dict[str, str], url: str, *specs: str) -> subprocess.CompletedProcess[str]:
    args = ["create", "--prefix", "/nonexistent/prefix", "--dry-run", "--json", "--override-channels"]
    return run_shim(shim, env, *args, "--channel", url, *specs)


def solved(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """name -> build of a successful dry run."""
    assert proc.returncode == 0, proc.stderr
    return {r["name"]: r["build"] for r in json.loads(proc.stdout)["actions"]["FETCH"]}


def file_hashes(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def test_launcher_is_idempotent_and_runs_this_interpreter(tmp_path: Path) -> None:
    exe = shim_executable(tmp_path)
    os.utime(exe, ns=(0, 0))  # any rewrite gives it the current time, however fast it comes
    assert exe == shim_executable(tmp_path) and exe.stat().st_mtime_ns == 0  # untouched
    assert exe.name == "conda" and os.access(exe, os.X_OK)
    assert exe.read_text().splitlines()[0] == f"#!{sys.executable}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conda"]  # no temp file left behind
    spaced = tmp_path / "dir with space" / "python"
    spaced.parent.mkdir()
    spaced.symlink_to(sys.executable)
    odd = shim_executable(tmp_path / "odd", python=str(spaced))
    assert odd.read_text().startswith("#!/bin/sh\n")  # a shebang cannot hold that path
    ran = subprocess.run([str(odd), "--version"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.startswith("layerkit-conda-shim "), ran.stderr


def test_version_info_and_pkgs_dirs(shim: Path, env: dict[str, str]) -> None:
    version = run_shim(shim, env, "--version")
    assert version.returncode == 0 and version.stdout.startswith("layerkit-conda-shim ")
    env = {**env, "CONDA_PKGS_DIRS": "/a/pkgs,/b/pkgs", "CONDA_OVERRIDE_GLIBC": "2.17"}
    info = json.loads(run_shim(shim, env, "info", "--json").stdout)
    assert info["pkgs_dirs"] == ["/a/pkgs", "/b/pkgs"] and info["platform"] == SUBDIR
    virtual = {name: (ver, build) for name, ver, build in info["virtual_pkgs"]}
    assert virtual["__glibc"] == ("2.17", "0") and virtual["__archspec"] == ("1", "x86_64")
    assert "__cuda" not in virtual and "__osx" not in virtual
    config = run_shim(shim, env, "config", "--json", "list", "pkgs_dirs")  # micromamba's form
    assert json.loads(config.stdout) == {"pkgs_dirs": ["/a/pkgs", "/b/pkgs"]}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["create", "-p", "/x", "--json", "-c", "http://127.0.0.1:9", "a"], "--dry-run"),
        (["run", "-p", "/x", "python"], "invalid choice: 'run'"),
        (["env", "create", "--file", "x.yml"], "invalid choice: 'env'"),
        (["config", "--json", "list", "channels"], "not supported"),
    ],
)
def test_unsupported_usage_exits_2(shim: Path, env: dict[str, str], args: list[str], needle: str) -> None:
    proc = run_shim(shim, env, *args)
    assert proc.returncode == 2 and needle in proc.stderr


def test_dry_run_json_has_what_conda_lock_reads(
    shim: Path, env: dict[str, str], channel: tuple[Path, str]
) -> None:
    root, url = channel
    proc = dry_run(shim, env, url, "mlkit", "python 3.11.*")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["success"] is True and out["dry_run"] is True
    fetch = {r["name"]: r for r in out["actions"]["FETCH"]}
    assert {n: (r["version"], r["build"]) for n, r in fetch.items()} == {
        "corelib": ("2.1", "h0_0"), "datakit": ("1.1", "h0_0"), "mlkit": ("1.0", "cpu_0"), "python": ("3.11.9", "h0_0"),
    }  # fmt: skip
    for rec in fetch.values():
        assert rec["url"] == f"{url}/{SUBDIR}/{rec['fn']}" and rec["subdir"] == SUBDIR
        assert (rec["md5"], rec["sha256"]) == file_hashes(root / SUBDIR / rec["fn"])
        assert rec["build_string"] == rec["build"] and rec["timestamp"] == fx.FIXED_TIMESTAMP_MS
        assert isinstance(rec["depends"], list) and isinstance(rec["constrains"], list)
    assert fetch["datakit"]["depends"] == ["corelib >=2"]
    assert fetch["mlkit"]["track_features"] == "mlkit-cpu"
    links = {e["name"]: e for e in out["actions"]["LINK"]}
    assert links.keys() == fetch.keys()
    assert links["mlkit"]["dist_name"] == "mlkit-1.0-cpu_0" and links["mlkit"]["platform"] == SUBDIR


def use_env(mp: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Make os.environ equal env: in-process conda-lock hands os.environ to the shim."""
    for key in set(os.environ) - set(env):
        mp.delenv(key)
    for key, value in env.items():
        mp.setenv(key, value)


def test_conda_lock_solver_accepts_the_output(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conda_lock.conda_solver import solve_conda
    from conda_lock.lookup import DEFAULT_MAPPING_URL
    from conda_lock.models.channel import Channel
    from conda_lock.models.lock_spec import VersionedDependency

    _, url = channel
    spec = VersionedDependency(name="datakit", version="1.0", manager="conda", category="main", extras=[])
    use_env(monkeypatch, env)
    locked = solve_conda(
        shim, specs={"datakit": spec}, locked={}, update=[], platform=SUBDIR,
        channels=[Channel.from_string(url)], mapping_url=DEFAULT_MAPPING_URL,
    )  # fmt: skip
    assert {n: d.version for n, d in locked.items()} == {"datakit": "1.0", "corelib": "1.5"}
    assert locked["datakit"].dependencies == {"corelib": ">=1,<2"}
    assert locked["corelib"].hash.sha256 and locked["corelib"].categories == {"main"}


@pytest.mark.parametrize(
    ("cuda", "build"), [(None, "cpu_0"), ("", "cpu_0"), ("11.4", "cpu_0"), ("12.2", "cuda_0")]
)
def test_cuda_build_only_with_matching_cuda(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], cuda: str | None, build: str
) -> None:
    if cuda is not None:
        env = {**env, "CONDA_OVERRIDE_CUDA": cuda}  # 11.4 is below the build's __cuda >=11.8
    assert solved(dry_run(shim, env, channel[1], "mlkit"))["mlkit"] == build


def test_conda_lock_virtual_channel_supplies_virtual_packages(
    shim: Path, env: dict[str, str], channel: tuple[Path, str]
) -> None:
    from conda_lock.virtual_package import default_virtual_package_repodata

    fake = default_virtual_package_repodata(cuda_version="12.0")  # conda-lock's file:// channel
    out = solved(run_shim(shim, env, "create", "-p", "/x", "--dry-run", "--json",
                          "-c", channel[1], "-c", fake.channel_url, "mlkit"))  # fmt: skip
    assert out["mlkit"] == "cuda_0" and not [n for n in out if n.startswith("__")]
    strict = run_shim(shim, {**env, "CONDA_OVERRIDE_CUDA": ""}, "create", "-p", "/x", "--dry-run", "--json",
                      "-c", channel[1], "-c", fake.channel_url, "mlkit")  # fmt: skip
    assert solved(strict)["mlkit"] == "cpu_0"  # an empty override removes it, as in conda


@pytest.mark.parametrize(
    ("specs", "exception", "needle"),
    [
        (["broken"], "UnsatisfiableError", "does-not-exist"),
        (["datakit >=1.1", "corelib <2"], "UnsatisfiableError", "corelib"),
        (["no-such-package"], "PackagesNotFoundError", "no-such-package"),
        (["mlkit >>>1"], "InvalidMatchSpec", ">>>1"),
    ],
)
def test_unsolvable_reports_conda_style(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], specs: list[str], exception: str, needle: str
) -> None:
    proc = dry_run(shim, env, channel[1], *specs)
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["success"] is False and err["exception_name"] == exception and needle in err["message"]
    assert needle in proc.stderr


def test_list_and_install_keep_installed_packages(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], tmp_path: Path
) -> None:
    root, url = channel
    meta = tmp_path / "prefix" / "conda-meta"
    meta.mkdir(parents=True)
    for name, ver in [("corelib", "1.5"), ("datakit", "1.0"), ("python", "3.10.14"), ("toolz", "0.11")]:
        pkg = next(p for p in fx.default_packages() if (p.name, p.version) == (name, ver))
        md5, sha = file_hashes(root / pkg.subdir / pkg.filename)
        # the shape of conda-lock's fake prefix records (conda_solver.fake_conda_environment)
        entry = {"name": name, "version": ver, "build": pkg.build, "build_number": 0, "subdir": pkg.subdir,
                 "fn": pkg.filename, "url": f"{url}/{pkg.subdir}/{pkg.filename}", "channel": url,
                 "md5": md5, "sha256": sha, "depends": list(pkg.depends)}  # fmt: skip
        (meta / f"{name}-{ver}-{pkg.build}.json").write_text(json.dumps(entry))
    listed = json.loads(run_shim(shim, env, "list", "--no-pip", "-p", str(meta.parent), "--json").stdout)
    assert [(e["name"], e["version"]) for e in listed] == [
        ("corelib", "1.5"), ("datakit", "1.0"), ("python", "3.10.14"), ("toolz", "0.11"),
    ]  # fmt: skip
    proc = run_shim(shim, env, "install", "--override-channels", "--channel", url,
                    "-p", str(meta.parent), "--json", "--dry-run", "datakit")  # fmt: skip
    out = json.loads(proc.stdout)["actions"]
    assert {(r["name"], r["version"]) for r in out["FETCH"]} == {("datakit", "1.1"), ("corelib", "2.1")}
    assert {e["dist_name"] for e in out["UNLINK"]} == {"datakit-1.0-h0_0", "corelib-1.5-h0_0"}


def conda_lock(env: dict[str, str], cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "conda_lock", *map(str, args)]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


def locked_conda(lockfile: Path) -> dict[str, Any]:
    from conda_lock.lockfile import parse_conda_lock_file

    return {p.name: p for p in parse_conda_lock_file(lockfile).package if p.manager == "conda"}


def write_env(path: Path, url: str, deps: list[str], extra: str = "") -> Path:
    path.write_text(f"channels:\n  - {url}\ndependencies:\n" + "".join(f"  - {d}\n" for d in deps) + extra)
    return path


@pytest.mark.integration
def test_conda_lock_cli_lock_and_explicit_render(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], tmp_path: Path
) -> None:
    root, url = channel
    env_file = write_env(tmp_path / "environment.yml", url, ["python=3.11", "mlkit", "toolz", "datakit=1.0"])
    start = time.perf_counter()
    conda_lock(env, tmp_path, "lock", "--conda", shim, "-f", env_file, "-p", SUBDIR,
               "--lockfile", "conda-lock.yml", "--without-cuda")  # fmt: skip
    elapsed = time.perf_counter() - start
    print(f"conda-lock lock of the test channel took {elapsed:.2f}s")
    pkgs = locked_conda(tmp_path / "conda-lock.yml")
    assert {n: (p.version, p.url.rsplit("/", 1)[-1]) for n, p in pkgs.items()} == {
        "python": ("3.11.9", "python-3.11.9-h0_0.tar.bz2"), "mlkit": ("1.0", "mlkit-1.0-cpu_0.tar.bz2"),
        "datakit": ("1.0", "datakit-1.0-h0_0.tar.bz2"), "corelib": ("1.5", "corelib-1.5-h0_0.tar.bz2"),
        "toolz": ("0.12", "toolz-0.12-pyh_0.tar.bz2"),
    }  # fmt: skip
    for p in pkgs.values():
        assert p.url.startswith(url + "/") and p.platform == SUBDIR
        assert (p.hash.md5, p.hash.sha256) == file_hashes(root / p.url.removeprefix(url + "/"))
    assert pkgs["datakit"].dependencies == {"corelib": ">=1,<2"}

    conda_lock(env, tmp_path, "render", "--kind", "explicit", "-p", SUBDIR,
               "--filename-template", "explicit-{platform}.txt", "conda-lock.yml")  # fmt: skip
    lines = (tmp_path / f"explicit-{SUBDIR}.txt").read_text().splitlines()
    assert "@EXPLICIT" in lines and f"# platform: {SUBDIR}" in lines
    explicit = {ln.partition("#")[0]: ln.partition("#")[2] for ln in lines if ln.startswith("http")}
    assert explicit == {p.url: p.hash.md5 for p in pkgs.values()}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("flags", "build"),
    [(["--with-cuda", "12.0"], "cuda_0"), (["--without-cuda"], "cpu_0"),
     # conda-lock's default virtual packages carry __cuda 11.4 on linux-64: below mlkit's 11.8
     ([], "cpu_0")],
)  # fmt: skip
def test_conda_lock_cuda_flags_pick_the_variant(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], tmp_path: Path, flags: list[str], build: str
) -> None:
    env_file = write_env(tmp_path / "environment.yml", channel[1], ["mlkit"])
    conda_lock(
        env, tmp_path, "lock", "--conda", shim, "-f", env_file, "-p", SUBDIR, "--lockfile", "l.yml", *flags
    )
    assert locked_conda(tmp_path / "l.yml")["mlkit"].url.endswith(f"mlkit-1.0-{build}.tar.bz2")


@pytest.mark.integration
@pytest.mark.parametrize(("cuda_line", "build"), [('      __cuda: "12.0"\n', "cuda_0"), ("", "cpu_0")])
def test_run_lock_api_with_virtual_package_spec(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, cuda_line: str, build: str,
) -> None:  # fmt: skip
    from conda_lock.conda_lock import run_lock
    from conda_lock.lookup import DEFAULT_MAPPING_URL

    use_env(monkeypatch, env)
    env_file = write_env(tmp_path / "environment.yml", channel[1], ["mlkit"])
    spec = tmp_path / "virtual-packages.yml"
    spec.write_text(f'subdirs:\n  {SUBDIR}:\n    packages:\n      __glibc: "2.17"\n{cuda_line}')
    # mapping_url is required but only read for pip dependencies, so the unreachable default is fine
    run_lock([env_file], conda_exe=shim, platforms=[SUBDIR], kinds=["lock"], lockfile_path=tmp_path / "l.yml",
             virtual_package_spec=spec, mapping_url=DEFAULT_MAPPING_URL)  # fmt: skip
    assert locked_conda(tmp_path / "l.yml")["mlkit"].url.endswith(f"mlkit-1.0-{build}.tar.bz2")


@pytest.mark.integration
def test_conda_lock_update_moves_only_the_named_package(
    shim: Path, env: dict[str, str], tmp_path: Path
) -> None:
    newer = {("datakit", "1.1"), ("corelib", "2.1"), ("toolz", "0.12")}
    root = fx.make_channel(
        tmp_path / "channel", [p for p in fx.default_packages() if (p.name, p.version) not in newer]
    )
    url, stop = fx.serve_channel(root)
    try:
        env_file = write_env(tmp_path / "environment.yml", url, ["python=3.11", "datakit", "toolz"])
        conda_lock(
            env, tmp_path, "lock", "--conda", shim, "-f", env_file, "-p", SUBDIR, "--lockfile", "l.yml"
        )
        assert locked_conda(tmp_path / "l.yml")["datakit"].version == "1.0"
        fx.make_channel(root, fx.default_packages())  # same URL, newer packages published
        env = {**env, "RATTLER_CACHE_DIR": str(tmp_path / "cache2")}  # no stale repodata
        conda_lock(env, tmp_path, "lock", "--conda", shim, "-f", env_file, "-p", SUBDIR, "--lockfile", "l.yml",
                   "--update", "datakit")  # fmt: skip
    finally:
        stop()
    pkgs = locked_conda(tmp_path / "l.yml")
    assert {n: p.version for n, p in pkgs.items()} == {
        "python": "3.11.9",
        "datakit": "1.1",
        "corelib": "2.1",
        "toolz": "0.11",
    }


@pytest.mark.integration
def test_conda_lock_pip_dependencies_from_a_local_index(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], tmp_path: Path
) -> None:
    # Offline needs three things: an http (not file://) index, allow-pypi-requests: false, and
    # a local PyPI<->conda name mapping (the default one is downloaded from GitHub).
    wheels = [
        fx.WheelDef("tinypip", "1.0", ["tinydep>=1"]),
        fx.WheelDef("tinydep", "1.0"),
        fx.WheelDef("tinydep", "1.2"),
    ]
    index = fx.make_pypi_index(tmp_path / "pypi", wheels)
    pypi_url, stop = fx.serve_directory(index)
    mapping = tmp_path / "mapping.json"
    mapping.write_text("{}")
    extra = f"  - pip:\n    - tinypip\npip-repositories:\n  - {pypi_url}/simple\nallow-pypi-requests: false\n"
    env_file = write_env(tmp_path / "environment.yml", channel[1], ["python=3.11"], extra)
    try:
        conda_lock(env, tmp_path, "lock", "--conda", shim, "-f", env_file, "-p", SUBDIR, "--lockfile", "l.yml",
                   "--pypi_to_conda_lookup_file", mapping)  # fmt: skip
    finally:
        stop()
    from conda_lock.lockfile import parse_conda_lock_file

    pip = {p.name: p for p in parse_conda_lock_file(tmp_path / "l.yml").package if p.manager == "pip"}
    assert {n: p.version for n, p in pip.items()} == {"tinypip": "1.0", "tinydep": "1.2"}
    wheel = index / "files" / "tinydep-1.2-py3-none-any.whl"
    assert pip["tinydep"].url == f"{pypi_url}/files/{wheel.name}"
    assert pip["tinydep"].hash.sha256 == file_hashes(wheel)[1]
    assert {"python", "pip"} <= set(locked_conda(tmp_path / "l.yml"))  # conda-lock adds "pip *"


@pytest.mark.skipif(shutil.which("micromamba") is None, reason="micromamba is not on PATH")
@pytest.mark.parametrize("cuda", ["", "12.2"])
def test_same_answer_as_micromamba(
    shim: Path, env: dict[str, str], channel: tuple[Path, str], tmp_path: Path, cuda: str
) -> None:
    # a fresh package cache, so micromamba lists every package under FETCH as the shim does
    env = {**env, "CONDA_OVERRIDE_CUDA": cuda, "MAMBA_ROOT_PREFIX": str(tmp_path / "root"),
           "CONDA_PKGS_DIRS": str(tmp_path / "pkgs")}  # fmt: skip
    args = ["create", "--prefix", str(tmp_path / "p"), "--dry-run", "--json", "--override-channels",
            "--channel", channel[1], "mlkit", "python 3.11.*", "toolz"]  # fmt: skip
    real = subprocess.run(["micromamba", *args], env=env, capture_output=True, text=True, timeout=300)
    assert real.returncode == 0, real.stderr
    theirs = {r["name"]: r for r in json.loads(real.stdout)["actions"]["FETCH"]}
    ours = {r["name"]: r for r in json.loads(run_shim(shim, env, *args).stdout)["actions"]["FETCH"]}
    assert {n: (r["version"], r["build"]) for n, r in ours.items()} == {
        n: (r["version"], r["build"]) for n, r in theirs.items()
    }
    consumed = ("name", "version", "url", "md5", "sha256", "depends")  # what conda_solver.py reads
    assert {n: [r.get(k) for k in consumed] for n, r in ours.items()} == {
        n: [r.get(k) for k in consumed] for n, r in theirs.items()
    }
