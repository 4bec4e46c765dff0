"""Inputs the benchmark generates: spec variants, synthetic channels, lock specs, an hpccm recipe."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_channels as fx

# A recipe comparable to tests/specs/full-cpu.yaml: ubuntu:22.04 + apt packages + conda env.
HPCCM_RECIPE = """\
Stage0 += baseimage(image='ubuntu:22.04')
Stage0 += apt_get(ospackages=['ca-certificates', 'git', 'curl', 'fuse', 'libfuse-dev'])
Stage0 += conda(eula=True, channels=['conda-forge'],
                packages=['python=3.11', 'numpy=1.26', 'pandas=2.2', 'scipy=1.13'])
Stage0 += environment(variables={'OMP_NUM_THREADS': '4', 'TEAM': 'ml-platform'})
Stage0 += shell(commands=['mkdir -p /data', 'chmod 0777 /data'])
"""

FLAVOURS = (
    "cpu-ubuntu22.04",
    "cpu-ubuntu20.04",
    "cpu-ubuntu18.04",
    "cuda11.8-cudnn8-ubuntu22.04",
    "cuda12.1-cudnn8-ubuntu22.04",
    "cuda12.4-cudnn9-ubuntu22.04",
    "openmpi3.1.2-ubuntu18.04",
)
GPU = {"cuda11.8": "11.8", "cuda12.1": "12.1", "cuda12.4": "12.4"}
CONDA = ["numpy>=1.26,<2", "pandas=2.2.*", "scipy=1.13", "scikit-learn=1.5", "pyarrow=16", "matplotlib"]
APT = ["git", "curl", "vim", "htop", "unzip", "wget", "jq", "rsync"]
TEAM_LAYER = """\
conda:
  channels: [conda-forge]
  dependencies: [numpy=1.26, scipy=1.13]
apt: [ca-certificates]
env:
  TEAM: ml-platform
"""


def _q(v: object) -> str:
    return json.dumps(v)  # JSON is YAML: every generated value stays a plain, quoted scalar


def variant(i: int) -> str:
    """One generated spec: flavour, dependencies, apt, env, steps and features vary with i."""
    flavour = FLAVOURS[i % len(FLAVOURS)]
    lines = [f"name: variant-{i}", f"description: generated variant {i}"]
    if i % 3 == 0:
        lines.append("extends: [team.yaml]")
    lines += ["base:", f"  flavour: {flavour}", "platforms: [linux-64]"]
    deps = [f"python=3.{10 + i % 2}", *CONDA[: 1 + i % len(CONDA)]]
    lines += ["conda:", "  channels: [conda-forge]", "  dependencies:"]
    lines += [f"    - {_q(d)}" for d in deps]
    if i % 4 == 1:
        lines += ["    - pip:", f"        - {_q(f'requests==2.32.{i % 4}')}"]
    lines.append(f"apt: {_q(APT[: 1 + i % len(APT)])}")
    lines += ["steps:", f"  - run: {_q(f'mkdir -p /data/{i}')}"]
    if i % 2:
        lines += [f"  - run: {_q(['python', '-c', 'import sys; print(sys.version)'])}", "    stage: final"]
    lines += ["env:", f"  OMP_NUM_THREADS: {_q(str(1 + i % 8))}", f"  VARIANT: {_q(str(i))}"]
    features: list[str] = []
    if i % 2 == 0:
        features.append("  datasets: true")
    cuda = next((v for k, v in GPU.items() if flavour.startswith(k)), None)
    if cuda:
        features.append(f"  gpu: {{cuda: {_q(cuda)}}}")
    if features:
        lines += ["features:", *features]
    lines += ["runtime:", "  user: app", f"  uid: {1000 + i}", "  workdir: /app"]
    return "\n".join(lines) + "\n"


def write_variants(root: Path, n: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "team.yaml").write_text(TEAM_LAYER)
    paths = []
    for i in range(n):
        path = root / f"variant-{i:03d}.yaml"
        path.write_text(variant(i))
        paths.append(path)
    return paths


def _name(i: int) -> str:
    return f"syn{i:03d}"


def channel_packages(n: int) -> list[fx.PkgDef]:
    """`n` synthetic packages (a binary dependency tree, each needing python) plus the channel's
    fake python builds from ``default_packages()`` (3.10 and 3.11)."""
    python = [p for p in fx.default_packages() if p.name == "python"]
    py = "python >=3.10,<3.12"
    pkgs = [
        fx.PkgDef(_name(i), "1.0", "h0_0", depends=[py] if i == 0 else [py, f"{_name((i - 1) // 2)} >=1"])
        for i in range(n)
    ]
    return [*python, *pkgs]


def channel_deps(n: int) -> list[str]:
    return [_name(i) for i in range(n)]


def write_lock_spec(root: Path, url: str, deps: list[str], env_var: str = "") -> Path:
    """A layerkit spec locked against the local channel at `url`: python=3.11 plus `deps`."""
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "layerkit.yaml"
    body = "".join(f"    - {d}\n" for d in ["python=3.11", *deps])
    extra = f"env:\n  {env_var}: '1'\n" if env_var else ""
    spec.write_text(
        f"name: bench-lock\nbase:\n  flavour: cpu-ubuntu22.04\nplatforms: [linux-64]\n"
        f"conda:\n  channels: ['{url}']\n  dependencies:\n{body}{extra}"
    )
    return spec
