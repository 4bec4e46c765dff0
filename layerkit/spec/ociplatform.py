"""Conda platforms as OCI platforms, and which one this machine (or its engine) runs.

A spec names conda subdirs (`platforms: [linux-64, linux-aarch64]`); BuildKit, registries
and image indexes name OCI platforms (`linux/amd64`). One map, both ways.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Sequence
from typing import get_args

from layerkit.errors import SpecError
from layerkit.spec.models import Platform

# conda subdir -> (OCI os, OCI architecture)
OCI: dict[str, tuple[str, str]] = {
    "linux-64": ("linux", "amd64"),
    "linux-aarch64": ("linux", "arm64"),
    "linux-ppc64le": ("linux", "ppc64le"),
}
# What uname -m, Python's platform.machine() and the Engine API (Arch, Architecture) answer.
_MACHINES: dict[str, str] = {
    "x86_64": "linux-64",
    "amd64": "linux-64",
    "aarch64": "linux-aarch64",
    "arm64": "linux-aarch64",
    "ppc64le": "linux-ppc64le",
}
assert set(OCI) == set(get_args(Platform))


def oci(platform: str) -> str:
    """`linux-aarch64` -> `linux/arm64`: BuildKit's `platform` frontend attr."""
    os_, arch = os_arch(platform)
    return f"{os_}/{arch}"


def os_arch(platform: str) -> tuple[str, str]:
    try:
        return OCI[platform]
    except KeyError:
        raise SpecError(f"platform {platform!r}: expected one of {', '.join(OCI)}") from None


def from_machine(machine: str) -> str | None:
    """A machine name (`x86_64`, `arm64`, ...) as a conda platform; None when unknown."""
    return _MACHINES.get(machine.strip().lower())


def host(engine_arch: str | None = None) -> str | None:
    """The platform containers run natively here: the engine's reported architecture when
    an engine is known (it may be another machine), else this machine's."""
    return from_machine(engine_arch or _platform.machine())


def pick(platforms: Sequence[str], host_platform: str | None, what: str) -> str:
    """The one platform a command that runs the image uses: the host's, which must be one of
    the spec's (an emulated run is asked for with --platform)."""
    if host_platform is None:  # a machine this map does not know: the spec's first, as before
        return platforms[0]
    if host_platform in platforms:
        return host_platform
    raise SpecError(
        f"{what}: this engine runs {host_platform}, which is not among the spec's platforms "
        f"{list(platforms)}; pass --platform P to run one under emulation"
    )
