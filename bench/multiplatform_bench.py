"""Multi-platform section of the benchmark (issue 17), as information: cold build times of one
two-platform spec (tests/fixtures_multiarch.py: the multi-arch Debian 12 base, the channel's
archkit for each arch, locked by conda-lock) on real dockerd 26 + registry, each build after
the engine was emptied (no image, no BuildKit cache):

  amd64       `layerkit build --platform linux-64`: everything native;
  arm64       `layerkit build --platform linux-aarch64`: the env stage cross-installed on the
              build platform (FROM --platform=$BUILDPLATFORM), the base stage's and the
              user's RUN steps under QEMU;
  emulated    the same rendered arm64 Dockerfile with the env stage forced onto the target
              platform (`--platform=$BUILDPLATFORM` removed, the installer an arm64 Debian 12
              with python3-venv: fixtures_multiarch.arm64_installer_image), built by the docker
              CLI's BuildKit: the installer's venv, pip and py-rattler all run under QEMU.

The emulated installer image is made (~12 min under QEMU the first time, then loaded from its
cached rootfs) before the timings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Debian 12's docker CLI drives the engine's BuildKit itself (DOCKER_BUILDKIT=1).
DOCKER_CLI = "/usr/bin/docker"
CROSS_FROM = re.compile(r"^FROM --platform=\$BUILDPLATFORM \S+ AS env$", re.M)


def _layerkit_build(spec: Path, addr: str, platform: str) -> tuple[float, str]:
    """One whole-process build, in a repository of its own (no earlier build of the same name
    tag to import cache from); its time and "cached/total" steps."""
    site = spec.parent / "site.yaml"
    site.write_text(
        re.sub(r"repository: \S+", f"repository: bench/mp-{uuid.uuid4().hex[:8]}", site.read_text())
    )
    cmd = [sys.executable, "-m", "layerkit", "-q", "build", "--json", "--network", "host", "--addr", addr,
           "--platform", platform, str(spec)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"layerkit build --platform {platform} failed: {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    return wall, f"{doc['cached_steps']}/{doc['total_steps']}"


def _emulated_context(spec: Path, out: Path, installer: str) -> Path:
    """The arm64 build context, its env stage moved onto the target platform."""
    cmd = [sys.executable, "-m", "layerkit", "-q", "render", "--platform", "linux-aarch64", "-o", str(out),
           str(spec)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    dockerfile = out / "Dockerfile"
    text, n = CROSS_FROM.subn(f"FROM {installer} AS env", dockerfile.read_text())
    if n != 1:
        raise RuntimeError(f"{dockerfile}: no cross-installed env stage to force onto arm64")
    dockerfile.write_text(text)
    return out


def _docker_build(context: Path, docker_host: str) -> float:
    env = {**os.environ, "DOCKER_HOST": docker_host, "DOCKER_BUILDKIT": "1"}
    cmd = [DOCKER_CLI, "build", "--network", "host", "--platform", "linux/arm64",
           "-t", f"bench-emulated:{uuid.uuid4().hex[:8]}", str(context)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"emulated docker build failed: {proc.stderr[-2000:]}")
    return wall


def run(tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    import fixtures_multiarch as fm
    import fixtures_services as fs

    log("multi-platform: starting dockerd 26, registry, the multi-arch base and channel")
    with fs.dockerd_with_registry(engine="26") as svc, fm.multiarch_site(tmp / "mp-site") as site:
        base = fm.multiarch_base(svc)
        spec = fm.multiarch_spec(tmp / "mp", site, base, svc, repo=f"bench/mp-{uuid.uuid4().hex[:8]}")
        addr = f"docker://{svc.docker_host}"
        out: dict[str, Any] = {}
        for name, platform in (("amd64", "linux-64"), ("arm64", "linux-aarch64")):
            fs.empty_engine(svc.docker_host)
            log(f"multi-platform: cold layerkit build --platform {platform}")
            out[f"{name}_s"], out[f"{name}_cached"] = _layerkit_build(spec, addr, platform)
        if not os.access(DOCKER_CLI, os.X_OK):
            out["emulated_why"] = f"{DOCKER_CLI} is missing (docker.io)"
        else:
            log("multi-platform: the arm64 installer image (cached rootfs after the first time)")
            # suite "bookworm": configured under QEMU, with a CA bundle, which py-rattler's HTTP
            # client needs to start at all (on "bookworm-unpacked" it fails: "builder error").
            installer = fm.arm64_installer_image(svc, suite="bookworm")
            context = _emulated_context(spec, tmp / "mp-emulated", installer)
            fs.empty_engine(svc.docker_host)
            log("multi-platform: cold emulated arm64 build (env stage under QEMU)")
            out["emulated_s"] = _docker_build(context, svc.docker_host)
    out["arm64_vs_amd64"] = out["arm64_s"] / out["amd64_s"]
    if "emulated_s" in out:
        out["emulated_vs_arm64"] = out["emulated_s"] / out["arm64_s"]
    return out


def table(d: dict[str, Any]) -> list[str]:
    lines = [
        "7. multi-platform, as information: cold builds of one two-platform spec (engine emptied before each)",
        f"   amd64 (native)                       {d['amd64_s']:7.1f} s   ({d['amd64_cached']} steps cached)",
        f"   arm64 (env stage cross-installed)    {d['arm64_s']:7.1f} s   ({d['arm64_cached']} steps cached) "
        f"{d['arm64_vs_amd64']:.2f}x amd64",
    ]
    if "emulated_s" in d:
        lines.append(
            f"   arm64 (env stage emulated, QEMU)     {d['emulated_s']:7.1f} s   "
            f"{d['emulated_vs_arm64']:.2f}x cross-installed arm64"
        )
    else:
        lines.append(f"   arm64 emulated: not measured: {d['emulated_why']}")
    return lines
