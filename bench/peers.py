"""The peers layerkit is measured against, in the same run, on comparable inputs.

Each peer is installed from PyPI into one venv of its own (.cache/peers, never layerkit's
environment). The venv sees the system site-packages so that every interpreter pays the same
start-up (this machine's site-packages carries .pth files that cost tens of ms); the peers'
own packages come first on its path.

  hpccm        `hpccm --recipe R`: R is specgen.HPCCM_RECIPE (ubuntu base, apt packages,
               conda packages, env vars, a shell step), i.e. tests/specs/full-cpu.yaml;
  repo2docker  `repo2docker --no-build --debug DIR` (prints the Dockerfile it would build):
               DIR holds environment.yml, apt.txt and postBuild with the same content;
  neurodocker  `neurodocker generate docker ...`: the same base, apt packages, conda
               packages, pip package, env var and step as options.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEERS = {"hpccm": "hpccm", "repo2docker": "jupyter-repo2docker", "neurodocker": "neurodocker"}

ENVIRONMENT_YML = """\
name: full-cpu
channels: [conda-forge]
dependencies:
  - python=3.11
  - numpy>=1.26,<2
  - pandas=2.2.*
  - scipy=1.13
  - pip
  - pip:
      - requests==2.32.3
"""


def _venv(root: Path, log: Callable[[str], None]) -> tuple[Path | None, str]:
    python = root / "bin" / "python"
    if python.is_file():
        return python, ""
    log(f"creating the peers' venv {root}")
    p = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(root)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if p.returncode:
        return None, (p.stderr.strip().splitlines() or ["venv failed"])[-1]
    return python, ""


def install(root: Path, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Per peer: {"version": ...} when installed (now or earlier), else {"why": ...}."""
    python, why = _venv(root, log)
    out: dict[str, dict[str, Any]] = {}
    for peer, dist in PEERS.items():
        if python is None:
            out[peer] = {"why": f"no venv: {why}"}
            continue
        version = _version(python, dist)
        if version is None:
            log(f"pip install {dist} into {root}")
            p = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", dist],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            version = _version(python, dist)
            if version is None:
                lines = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR")] or ["pip failed"]
                out[peer] = {"why": f"pip install {dist} failed here: {lines[-1]}"}
                continue
        out[peer] = {"version": version}
    return out


def _version(python: Path, dist: str) -> str | None:
    p = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return p.stdout.strip() if p.returncode == 0 else None


def commands(root: Path, work: Path, hpccm_recipe: str) -> dict[str, list[str]]:
    """Each peer's command line for the comparable input, written under `work`."""
    bin_ = root / "bin"
    work.mkdir(parents=True, exist_ok=True)
    recipe = work / "hpccm-recipe.py"
    recipe.write_text(hpccm_recipe)
    repo = work / "r2d"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "environment.yml").write_text(ENVIRONMENT_YML)
    (repo / "apt.txt").write_text("ca-certificates\ngit\ncurl\n")
    (repo / "postBuild").write_text("#!/bin/bash\nmkdir -p /data && chmod 0777 /data\n")
    return {
        "hpccm": [str(bin_ / "hpccm"), "--recipe", str(recipe)],
        "repo2docker": [str(bin_ / "repo2docker"), "--no-build", "--debug", str(repo)],
        "neurodocker": [
            str(bin_ / "neurodocker"), "generate", "docker", "--pkg-manager", "apt",
            "--base-image", "ubuntu:22.04", "--install", "ca-certificates", "git", "curl",
            "--miniconda", "version=latest", "conda_install=python=3.11 numpy=1.26 pandas=2.2 scipy=1.13",
            "pip_install=requests==2.32.3",
            "--env", "OMP_NUM_THREADS=4", "TEAM=ml-platform", "--run", "mkdir -p /data && chmod 0777 /data",
        ],
    }  # fmt: skip
