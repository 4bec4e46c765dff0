"""The hooks of .pre-commit-hooks.yaml under the real pre-commit: the repository is copied
into a temporary git repo that pre-commit clones, installs (a venv, pip from PyPI) and runs
from a real `git commit` in a project with a real conda-lock lock."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from check_project import GIT_ENV, git, locked_template, new_repo
from ruamel.yaml import YAML

from layerkit.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
# What `pip install .` needs from the checkout (pyproject's force-include names the data dirs).
HOOK_REPO_FILES = (
    "pyproject.toml",
    "README.md",
    ".pre-commit-hooks.yaml",
    "layerkit",
    "templates",
    "base-images",
)


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This checkout's working tree as a git repository pre-commit can clone: (path, rev)."""
    repo = tmp_path_factory.mktemp("hooks") / "layerkit"
    repo.mkdir()
    for name in HOOK_REPO_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, repo / name)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "layerkit")
    return repo, git(repo, "rev-parse", "HEAD").stdout.strip()


def commit(project: Path, home: Path, message: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "HOME": str(project.parent), "PRE_COMMIT_HOME": str(home)}
    env.pop("LAYERKIT_CACHE", None)
    # git hands the hook's output to stderr: keep both streams in one, in order.
    return subprocess.run(
        ["git", "commit", "-m", message], cwd=project, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_hooks_pass_fresh_and_fail_stale_commits(
    channel: tuple[Path, str], hook_repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    hooks = {h["id"]: h for h in YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"layerkit-check", "layerkit-render"}
    project = new_repo(locked_template(channel[1], tmp_path_factory), tmp_path / "project")
    monkeypatch.chdir(project)
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "lk-cache"))
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
    # A committed rendered context for envs/a (the layerkit-render hook keeps it current).
    assert main(["-q", "render", "envs/a/layerkit.yaml", "-o", "envs/a/layerkit.context"]) == 0
    path, rev = hook_repo
    config = {"repos": [{"repo": str(path), "rev": rev,
                         "hooks": [{"id": "layerkit-render"}, {"id": "layerkit-check"}]}]}  # fmt: skip
    (project / ".pre-commit-config.yaml").write_text(json.dumps(config))  # JSON is YAML
    home = tmp_path / "pre-commit-home"
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=project, env=env, check=True,
                   capture_output=True)  # fmt: skip
    git(project, "add", ".")

    ok = commit(project, home, "context + hooks")
    assert ok.returncode == 0, ok.stdout
    assert re.search(r"^layerkit render\.+Passed$", ok.stdout, re.MULTILINE), ok.stdout
    assert re.search(r"^layerkit check\.+Passed$", ok.stdout, re.MULTILINE), ok.stdout
    head = git(project, "rev-parse", "HEAD").stdout

    # A new dependency in the shared layer: envs/a's lock is stale, the commit is refused.
    team = project / "envs" / "team.yaml"
    team.write_text(team.read_text().replace("[python=3.11]", "[python=3.11, toolz=0.12]"))
    git(project, "add", "envs/team.yaml")
    stale = commit(project, home, "add corelib")
    assert stale.returncode == 1
    assert (
        "envs/a/layerkit.conda-lock.yml: stale: envs/a/layerkit.yaml or a layer it extends changed "
        "since it was locked; run `layerkit lock envs/a/layerkit.yaml`"
    ) in stale.stdout
    assert git(project, "rev-parse", "HEAD").stdout == head

    # Relocked: the render hook rewrites the context from the new lock (pre-commit fails a
    # hook that changed files), then the commit goes through.
    assert main(["-q", "lock", "envs/a/layerkit.yaml", "--no-pin-base"]) == 0
    git(project, "add", "envs")
    rendered = commit(project, home, "relock")
    assert rendered.returncode == 1 and "files were modified by this hook" in rendered.stdout, rendered.stdout
    assert "toolz-0.12" in (project / "envs" / "a" / "layerkit.context" / "conda-linux-64.lock").read_text()
    git(project, "add", "envs")
    final = commit(project, home, "relock")
    assert final.returncode == 0, final.stdout
    assert re.search(r"^layerkit check\.+Passed$", final.stdout, re.MULTILINE), final.stdout
    assert git(project, "rev-parse", "HEAD").stdout != head
