"""CUDA from NVIDIA's apt repositories, for flavours whose nvidia/cuda tags no longer exist.

The catalog's `cuda_apt` (spec/catalog.py, every field pattern-checked there) becomes the
base stage's install step and the variables NVIDIA's own images set. Each repository serves
one directory per platform (x86_64, sbsa for arm64), so the plan is per platform.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from layerkit.errors import SpecError
from layerkit.render.envvars import env_values
from layerkit.spec.catalog import NVIDIA_REPO_ARCH, CatalogImage


class AptSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    key_url: str
    fingerprint: str
    keyring: str  # /usr/share/keyrings/<name>.gpg: the only key apt trusts for this source
    list_file: str  # /etc/apt/sources.list.d/<name>.list


class CudaAptPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: tuple[AptSource, ...]
    bootstrap: tuple[str, ...]
    packages: tuple[str, ...]
    toolkit: str
    env: tuple[tuple[str, str], ...]  # (NAME, value already quoted for ENV)


def cuda_apt_plan(image: CatalogImage | None, platform: str = "linux-64") -> CudaAptPlan | None:
    """The base stage's CUDA install for `image` on `platform`, or None when its base image
    carries CUDA."""
    spec = image.cuda_apt if image else None
    if image is None or spec is None:
        return None
    arch = NVIDIA_REPO_ARCH.get(platform)
    if arch is None or platform not in image.platforms:
        # validate refuses this first (spec/platforms.py); a direct render must not fall back to x86_64.
        raise SpecError(f"flavour '{image.id}' records no CUDA apt repository for {platform}")
    sources = tuple(
        AptSource(
            url=f"{r.root}/{arch}",
            key_url=f"{r.root}/{arch}/{r.key}",
            fingerprint=r.fingerprint,
            keyring=f"/usr/share/keyrings/layerkit-nvidia-{n}.gpg",
            list_file=f"/etc/apt/sources.list.d/layerkit-nvidia-{n}.list",
        )
        for n, r in enumerate(spec.repos, 1)
    )
    fronts = {k: list(v) for k, v in (("PATH", spec.path), ("LD_LIBRARY_PATH", spec.ld_library_path)) if v}
    env = env_values(dict(spec.env), fronts)
    return CudaAptPlan(
        sources=sources,
        bootstrap=tuple(spec.bootstrap),
        packages=tuple(spec.packages),
        toolkit=spec.toolkit,
        env=tuple(sorted(env.items())),
    )
