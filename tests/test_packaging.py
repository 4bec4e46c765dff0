"""The wheel ships templates/ and base-images/ and an installed layerkit renders from them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_wheel_carries_data_and_renders(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True)  # fmt: skip
    wheel = next(dist.glob("layerkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "layerkit/_data/templates/Dockerfile.j2" in names
    assert "layerkit/_data/templates/install_env.py" in names
    assert "layerkit/_data/base-images/images/cpu-ubuntu22.04.yaml" in names
    assert "layerkit/_data/base-images/compat.yaml" in names
    # The installed wheel, not a source tree a caller's PYTHONPATH (a worktree) puts first.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    code = "import layerkit.resources as r; print(r.data_dir('templates')); print(r.data_dir('base-images'))"
    out = subprocess.run(
        [str(py), "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True, env=env
    ).stdout
    assert all("site-packages/layerkit/_data/" in line for line in out.splitlines()), out
    spec = ROOT / "tests" / "specs" / "gpu-cuda11.8.yaml"
    r = subprocess.run(
        [str(py), "-m", "layerkit", "render", str(spec)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS runtime" in r.stdout
