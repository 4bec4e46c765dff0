"""Which of a spec's `platforms:` its base can serve.

A catalog base (a flavour, or an image the catalog knows) lists the platforms it has a variant
for (base-images/images/*.yaml `platforms`, with their sources). Asking one for a tracked
platform it lacks is refused at that `platforms:` entry, naming the flavours that have it. A
base of the user's own (an image the catalog does not know, a base Dockerfile) is not known
either way: a warning says the build fails there if it has no such variant.
"""

from __future__ import annotations

from layerkit.errors import SpecError
from layerkit.spec.catalog import TRACKED_PLATFORMS, Catalog, CatalogImage
from layerkit.spec.merge import Resolved

DEFAULT_PLATFORM = "linux-64"
# The platform whose pip steps run the environment's own Python (render/envinstall.py); on
# every other one pip packages are cross-installed from locked wheels, so a flavour's own
# (unlocked) pip packages cannot be.
NATIVE_PIP = "linux-64"


def serves(image: CatalogImage, platforms: tuple[str, ...]) -> bool:
    """Whether `image` has a variant for every tracked platform of `platforms`, and layerkit
    can install its pip packages there."""
    return all(
        p in image.platforms and not (image.pip and p != NATIVE_PIP)
        for p in platforms
        if p in TRACKED_PLATFORMS
    )


def check_platforms(r: Resolved, image: CatalogImage | None, cat: Catalog, warn: list[str]) -> None:
    """Refuse a catalog base for a platform it has no variant for; warn for a base of the user's."""
    spec = r.spec
    platforms = spec.platforms or (DEFAULT_PLATFORM,)
    for i, p in enumerate(platforms):
        if p in platforms[:i]:
            # Each platform is one entry of the image index: twice would be one image.
            raise SpecError(f"platform {p} is listed twice; list each platform once", r.loc(("platforms", i)))
    if image is None:
        base = spec.base
        if base is None or not (base.image or base.dockerfile or base.dockerfile_file):
            return
        what = f"base image '{base.image}'" if base.image else "the base Dockerfile's image"
        for i, p in enumerate(platforms):
            if p != DEFAULT_PLATFORM:
                warn.append(
                    f"{r.loc(('platforms', i))}: warning: layerkit cannot tell whether {what} has a {p} "
                    "variant; the build fails if it has none"
                )
        return
    for i, p in enumerate(platforms):
        # A flavour that installs CUDA from NVIDIA's repositories renders only the platforms
        # it records (render/cuda_apt.py), tracked or not.
        if p not in image.platforms and (p in TRACKED_PLATFORMS or image.cuda_apt is not None):
            having = cat.with_platform(p)
            others = ", ".join(having) if having else "none"
            raise SpecError(
                f"{_named(r, image)} has no {p} variant (it has {', '.join(image.platforms)}); "
                f"flavours with {p}: {others}",
                r.loc(("platforms", i)),
            )
        if image.pip and p != NATIVE_PIP:
            raise SpecError(
                f"{_named(r, image)} installs pip packages ({', '.join(image.pip)}) that are not "
                f"locked, so they cannot be cross-installed for {p}; use a plain flavour "
                f"(e.g. cpu-ubuntu22.04) and put them in your own `conda: pip:` section, which "
                f"`layerkit lock` locks and the {p} build installs from wheels",
                r.loc(("platforms", i)),
            )


def _named(r: Resolved, image: CatalogImage) -> str:
    """How the spec came to this base: by name, by its image ref, or picked by features."""
    base = r.spec.base
    if base and base.flavour:
        return f"base flavour '{image.id}' ({r.loc(('base', 'flavour'))})"
    if base and base.image:
        return f"base image '{base.image}' (catalog flavour '{image.id}', {r.loc(('base', 'image'))})"
    return f"base flavour '{image.id}' (picked by features)"
