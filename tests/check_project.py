"""A small git project of specs for `layerkit check` and pre-commit tests: two spec roots
sharing one layer (envs/team.yaml), the first locked with the real conda-lock path."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "layerkit tests", "GIT_AUTHOR_EMAIL": "tests@layerkit.invalid",
    "GIT_COMMITTER_NAME": "layerkit tests", "GIT_COMMITTER_EMAIL": "tests@layerkit.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def write_project(root: Path, url: str) -> None:
    (root / "envs" / "a").mkdir(parents=True)
    (root / "envs" / "team.yaml").write_text(
        f"conda:\n  channels: ['{url}']\n  dependencies: [python=3.11]\nenv: {{TEAM: '1'}}\n"
    )
    (root / "envs" / "a" / "layerkit.yaml").write_text(
        "name: a\nextends: [../team.yaml]\nconda:\n  dependencies: [datakit=1.0]\n"
    )
    (root / "envs" / "b.layerkit.yaml").write_text(
        "name: b\nextends: [team.yaml]\nconda:\n  dependencies: [toolz=0.12]\n"
    )


def locked_template(url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with envs/a locked (real conda-lock, the local channel at `url`); tests
    copy it, so a module locks once."""
    from layerkit.cli import main

    root = tmp_path_factory.mktemp("template") / "proj"
    write_project(root, url)
    cache = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RATTLER_CACHE_DIR", str(cache / "rattler"))
        mp.setenv("LAYERKIT_CACHE", str(cache / "layerkit"))
        assert main(["-q", "lock", str(root / "envs" / "a" / "layerkit.yaml"), "--no-pin-base"]) == 0
    return root


def new_repo(template: Path, dest: Path) -> Path:
    """A fresh git repository holding a copy of the template, everything committed."""
    shutil.copytree(template, dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", ".")
    git(dest, "commit", "-q", "-m", "specs")
    return dest
