"""Issue 12 §3, "the first hour": each wall a new user hit, reproduced and fixed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from layerkit.errors import SpecError
from layerkit.lock import solve as lockrun
from layerkit.lock.pypimap import mapping_file
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check


def checked(text: str, name: str = "environment.yml") -> Checked:
    return check(resolve(load_text(text, name)))


PIP_ENV = "name: p\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - torch\n"


# --- the PyPI -> conda name mapping ships with layerkit ----------------------------------


def _lock_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> list[str]:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        if "--pypi_to_conda_lookup_file" in cmd:  # it lives only as long as the lock's work folder
            mapping = Path(cmd[cmd.index("--pypi_to_conda_lookup_file") + 1])
            (tmp_path / "seen-mapping.json").write_bytes(mapping.read_bytes())
        return subprocess.CompletedProcess(cmd, 1, "", "stop here")

    monkeypatch.setattr(lockrun.subprocess, "run", fake_run)
    with pytest.raises(Exception, match="stop here"):
        lockrun.lock(
            checked(text), tmp_path / "x.conda-lock.yml", solver="/bin/true", cache_dir=tmp_path / "c"
        )
    return seen[0]


def test_pip_locking_hands_conda_lock_the_shipped_mapping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without a lookup file conda-lock downloads grayskull_pypi_mapping.json from GitHub."""
    cmd = _lock_command(monkeypatch, tmp_path, PIP_ENV)
    assert "--pypi_to_conda_lookup_file" in cmd
    path = Path(cmd[cmd.index("--pypi_to_conda_lookup_file") + 1])
    # Written into the lock's private work folder, never read back from a cache (issue 15 §4).
    assert path.is_absolute() and path.parent.name.startswith(".layerkit-lock-")
    assert not path.is_relative_to(tmp_path / "c") and not path.exists()
    table = json.loads((tmp_path / "seen-mapping.json").read_text())
    assert table["torch"]["conda_name"] == "pytorch"  # the real table, not an empty stand-in
    assert table["build"]["conda_name"] == "python-build"


def test_the_shipped_mapping_is_what_conda_lock_reads(tmp_path: Path) -> None:
    from conda_lock.lookup import conda_name_to_pypi_name, pypi_name_to_conda_name

    url = str(mapping_file(tmp_path))
    assert len(json.loads(Path(url).read_text())) > 10000
    assert pypi_name_to_conda_name("PyYAML", mapping_url=url) == "pyyaml"
    assert pypi_name_to_conda_name("torch", mapping_url=url) == "pytorch"
    assert conda_name_to_pypi_name("pytorch", mapping_url=url) == "torch"
    assert mapping_file(tmp_path) == mapping_file(tmp_path)  # written once


# --- local channels and mirrors ----------------------------------------------------------

SEEN_OFFLINE = (  # conda-lock's output when conda.anaconda.org cannot be resolved (issue 12)
    "error sending request for url (https://conda.anaconda.org/conda-forge/noarch/repodata_shards.msgpack.zst)\n"
    "Caused by: dns error\nCaused by: failed to lookup address information: Name or service not known\n"
)


@pytest.mark.parametrize(
    ("value", "line"),
    [("\n    - http://mirror.internal/conda-forge", 3), ("\n    conda-forge: [http://m/conda-forge]", 4)],
)
def test_mirrors_channels_of_the_wrong_shape_say_the_form(value: str, line: int) -> None:
    with pytest.raises(SpecError) as exc:
        checked(f"base: {{image: debian:12}}\nmirrors:\n  channels:{value}\n", "s.yaml")
    text = str(exc.value)
    assert text.startswith(f"s.yaml:{line}:")
    assert "channels: {conda-forge: 'http://mirror.internal/conda-forge'}" in text
    assert "mirrors.channel_alias" in text


def test_a_mirrors_map_is_accepted() -> None:
    c = checked(
        "base: {image: debian:12}\nconda:\n  channels: [conda-forge]\n  dependencies: [numpy]\n"
        "mirrors:\n  channels: {conda-forge: 'http://127.0.0.1:8/conda-forge'}\n",
        "s.yaml",
    )
    assert lockrun.lock_inputs(c).channels == ("http://127.0.0.1:8/conda-forge",)


def test_an_unreachable_channel_names_the_mirror_settings() -> None:
    err = lockrun._classify(SEEN_OFFLINE)
    text = str(err)
    assert "conda.anaconda.org" in text and "\n" not in text
    assert "mirrors.channels" in text and "mirrors.channel_alias" in text


def test_an_unreachable_index_names_the_pypi_mirror() -> None:
    err = lockrun._classify("error: https://pypi.org/simple/torch/: connection refused\n")
    assert "mirrors.pypi_index" in str(err)


# --- a pip: section on a channel without pip ---------------------------------------------


@pytest.fixture(scope="module")
def nopip_channel(tmp_path_factory: pytest.TempPathFactory):
    import fixtures_channels as fx

    pkgs = [p for p in fx.default_packages() if p.name != "pip"]
    root = fx.make_channel(tmp_path_factory.mktemp("nopip") / "channel", pkgs)
    url, stop = fx.serve_channel(root)
    yield url
    stop()


@pytest.mark.integration
def test_pip_on_a_channel_without_pip_names_the_line_and_the_fix(
    cli, nopip_channel: str, tmp_path: Path
) -> None:
    spec = tmp_path / "env.yaml"
    spec.write_text(
        f"name: p\nconda:\n  channels: ['{nopip_channel}']\n  dependencies:\n    - python=3.11\n"
        "  pip:\n    - tinypip\n"
    )
    r = cli("lock", spec, "--no-pin-base")
    assert r.code == 2, r.err
    line = next(ln for ln in r.err.splitlines() if "error:" in ln)
    assert line.startswith(f"{spec}:6:3: error: "), line  # the pip: section
    assert "No candidates were found for pip" in line
    assert nopip_channel in line and "conda-forge" in line and "mirrors.channels" in line


# --- env list --registry R reads what registry.address R holds --------------------------


@pytest.mark.integration
def test_env_list_with_only_the_address_finds_a_named_repository(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures_services import registry
    from test_envs import _write

    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "machine-a"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.delenv("LAYERKIT_REGISTRY", raising=False)
    with registry(tmp_path / "reg") as reg:
        spec = _write(tmp_path / "p", reg.address)
        spec.write_text(spec.read_text() + "  repository: mine/layerkit\n")
        assert cli("env", "register", spec).code == 0
        listed = cli("env", "list", "--registry", reg.address)
        assert listed.code == 0, listed.err
        assert "train" in listed.out
        shown = cli("env", "show", "train", "--registry", reg.address, "--json")
        assert shown.code == 0, shown.err
        assert json.loads(shown.out)["name"] == "train"
        # a second repository under the same address: the address alone is ambiguous
        other = _write(tmp_path / "q", reg.address, name="other")
        other.write_text(other.read_text() + "  repository: theirs/layerkit\n")
        assert cli("env", "register", other).code == 0
        amb = cli("env", "list", "--registry", reg.address)
        assert amb.code == 2 and "mine/layerkit, theirs/layerkit" in amb.err and "--spec" in amb.err
        assert "other" in cli("env", "list", "--registry", reg.address, "--spec", other).out


# --- the README's pre-commit snippet works as written -------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_the_readmes_pre_commit_config_works_as_written(
    channel: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import os
    import re
    import sys

    from check_project import GIT_ENV, git, locked_template, new_repo

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    snippet = re.search(r"```yaml\n(# \.pre-commit-config\.yaml\n.*?)```", readme, re.DOTALL)
    assert snippet and "rev: v0.1.0" not in snippet.group(1)
    project = new_repo(locked_template(channel[1], tmp_path_factory), tmp_path / "project")
    (project / ".pre-commit-config.yaml").write_text(snippet.group(1))
    home = tmp_path / "pre-commit-home"
    here = str(Path(__file__).resolve().parent.parent)  # this checkout's layerkit, as installed
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(home), "HOME": str(tmp_path), "PATH": path,
           "PYTHONPATH": here, "LAYERKIT_CACHE": str(tmp_path / "lk-cache")}  # fmt: skip
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=project, env=env, check=True)
    git(project, "add", ".")
    done = subprocess.run(["git", "commit", "-m", "hooks"], cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert re.search(r"^layerkit check\.+Passed$", done.stdout, re.MULTILINE), done.stdout
    team = project / "envs" / "team.yaml"
    team.write_text(team.read_text().replace("[python=3.11]", "[python=3.11, toolz=0.12]"))
    git(project, "add", "envs/team.yaml")
    stale = subprocess.run(["git", "commit", "-m", "x"], cwd=project, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert stale.returncode == 1 and "stale:" in stale.stdout, stale.stdout
