"""CUDA from NVIDIA's apt repositories, for flavours whose nvidia/cuda tags no longer exist.

The catalog's `cuda_apt` (spec/catalog.py, every field pattern-checked there) becomes the
base stage's install step and the variables NVIDIA's own images set.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from layerkit.render.envvars import env_values
from layerkit.spec.catalog import CatalogImage


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


def cuda_apt_plan(image: CatalogImage | None) -> CudaAptPlan | None:
    """The base stage's CUDA install for `image`, or None when its base image carries CUDA."""
    spec = image.cuda_apt if image else None
    if spec is None:
        return None
    sources = tuple(
        AptSource(
            url=r.url,
            key_url=r.key_url,
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
