"""GPU facts of a spec: the CUDA it targets, and its agreement with a named catalog base.

`features.gpu` and a CUDA flavour (or a catalog image named by `base.image`) both say which
CUDA the image has. When both are set they must agree; when only the base says it, the
base's CUDA is the environment's (the lock's `__cuda`, the unlocked solve's override, the
GPUs `layerkit run` asks for).
"""

from __future__ import annotations

from layerkit.errors import SpecError
from layerkit.spec.catalog import CatalogImage
from layerkit.spec.merge import Resolved
from layerkit.spec.models import Spec


def same_release(want: str, have: str) -> bool:
    """True when one version is the other or a release of it ("12.1" and "12.1.1")."""
    return want == have or have.startswith(want + ".") or want.startswith(have + ".")


def driver_cuda(version: str) -> str:
    """The `__cuda` value for a toolkit version: major.minor, as a driver reports it."""
    return ".".join(version.split(".")[:2])


def cuda_of(spec: Spec, image: CatalogImage | None) -> str | None:
    """The CUDA the environment targets: features.gpu.cuda as written (locks made from it stay
    fresh), else the catalog base's as major.minor; None for a CPU environment."""
    gpu = spec.features.gpu if spec.features else None
    if gpu and gpu.cuda:
        return gpu.cuda
    if image is not None and image.cuda:
        return driver_cuda(image.cuda)
    return None


def check_named_base(r: Resolved, image: CatalogImage) -> None:
    """features.gpu must describe the catalog base the spec names (flavour or image ref)."""
    gpu = r.spec.features.gpu if r.spec.features else None
    if gpu is None or image.cuda is None:
        return
    base = r.spec.base
    named = ("base", "flavour") if base and base.flavour else ("base", "image")
    for part, want, have in (("cuda", gpu.cuda, image.cuda), ("cudnn", gpu.cudnn, image.cudnn),
                             ("nccl", gpu.nccl, image.nccl)):  # fmt: skip
        if want is None or (have is not None and same_release(want, have)):
            continue
        fix = f"set it to {have} or drop it" if have else "drop it"
        raise SpecError(
            f"features.gpu.{part} is {want} but the base '{image.id}' ({named[1]} at {r.loc(named)}) "
            f"has {part} {have or 'none'}: {fix}, or pick a base with {part} {want} (see `layerkit flavours`)",
            r.loc(("features", "gpu", part)),
        )
