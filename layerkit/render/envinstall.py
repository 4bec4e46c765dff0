"""The env stage: how /opt/env is made, in an image of its own, never on the base.

The installer runs in a pinned installer image (base-images/installer-image.yaml, or
`conda.installer_image`) and the final stage copies the finished prefix. So the base needs
no Python and no apt for it (Azure ML bases put Python 3.7/3.8 first on PATH; py-rattler
needs >= 3.10), a base-only change re-runs no install step and a lock change no base step.
Conda packages need only the base's glibc: checked here against the lock when the catalog
knows the base's, and by a RUN in the final stage when it does not.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from layerkit.errors import SpecError
from layerkit.lock.model import Lock
from layerkit.render import envlayers
from layerkit.render.envlayers import LayerGroup
from layerkit.render.envvars import quote
from layerkit.spec import channelvars as CV
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec.catalog import load_catalog, solve_glibc
from layerkit.spec.imageref import has_digest, mirror
from layerkit.spec.mirrortable import url_table
from layerkit.spec.models import Installer
from layerkit.spec.platforms import NATIVE_PIP
from layerkit.spec.validate import Checked
from layerkit.spec.values import ENV_NAME, version_key

RATTLER_VERSION = "0.28.0"
# The env stage installs py-rattler with pip --require-hashes: its glibc wheels' sha256, as
# PyPI's simple index lists them for py_rattler-0.28.0-cp310-abi3-manylinux_2_17_x86_64 and
# -manylinux_2_28_aarch64 (the installer image is glibc; pip takes the one for its platform).
RATTLER_WHEEL_SHA256 = (
    "4f4ab1d34d5394e7ce130a86e59009c95ace4f5757d9c3af04de1351bcea47eb",
    "61b24202374188e72130f1b3dc63b455befaafc3e49e5481a38b6a6c8828c1e0",
)
RATTLER_PACKAGE_CACHE = "/var/cache/layerkit/rattler"
# pypa's wheel installer, for the cross pip step (install_env.py --pip): the sha256 of
# installer-1.1.0-py3-none-any.whl as PyPI's simple index lists it.
INSTALLER_LIB = ("installer", "1.1.0", "f55f5728ff61d3dd54dbc5a397cf3f7307cb64b180c20b72afbebf01c9e2c8a0")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Download(_Model):
    url: str
    algorithm: Literal["sha256", "md5"]
    digest: str


class CrossPip(_Model):
    """A locked pip section for a foreign platform: wheels for these tags (install_env.py --pip)."""

    python: str  # X.Y of the lock's python for the platform
    glibc: str  # the newest manylinux glibc the base runs


class EnvInstall(_Model):
    """How the env stage creates /opt/env."""

    installer: Installer
    installer_download: Download | None  # Miniconda/micromamba; None for rattler
    installer_version: str
    installer_ref: str  # FROM of the env stage: mirrors applied, pinned by digest when known
    # What the hash takes: the image as named (no mirror), with its digest (spec's or lock's).
    installer_image: str
    locked: bool
    conda_file: str  # context file: explicit lock, or environment.yml when unlocked
    pip_file: str | None  # context file with pip requirements
    pip_hashes: bool
    pip_index: str | None
    # BuildKit cache mount for downloaded packages: out of the image, kept by the builder,
    # so a lock change downloads only the packages that changed.
    package_cache: str | None
    # glibc the locked packages need, checked by a RUN in the final stage because the
    # catalog does not know the base's (an image or Dockerfile of the user's); None: no check.
    glibc_check: str | None
    # An unlocked solve runs in the installer image, not on the base and where no driver is:
    # CONDA_OVERRIDE_CUDA / _GLIBC (read by conda, micromamba and install_env.py) give it the
    # environment's __cuda and the base's __glibc, as the lock would. None when locked.
    cuda_override: str | None = None
    glibc_override: str | None = None
    # Variables of channel URLs (spec/channelvars.py): each a BuildKit secret of that id,
    # mounted into the install RUN only, where install_env.py expands the URLs with it.
    secrets: tuple[str, ...] = ()
    # Variables of the pip index URLs (`https://${USER}:${PASS}@host/simple`): BuildKit secrets
    # mounted into the pip RUN only, exported there from /run/secrets; pip expands them in the
    # requirements file's index lines and takes the credentials from them for that host.
    pip_secrets: tuple[str, ...] = ()
    # Package groups split off /opt/env into layers of their own (render/envlayers.py).
    layers: tuple[LayerGroup, ...] = ()
    # Set when the pip section is cross-installed (a platform other than NATIVE_PIP).
    cross_pip: CrossPip | None = None
    # The site's (mirror prefix, canonical prefix) table (spec/mirrortable.py): canonical_urls.py
    # maps the URLs the installers record in /opt/env back through it. Empty without mirrors,
    # as in the canonical render the hash is taken from: the image then reads as that render's.
    canonical_urls: tuple[tuple[str, str], ...] = ()


def _glibc_check(checked: Checked, lock: Lock | None, platform: str) -> str | None:
    need = lock.min_glibc(platform) if lock else None
    image = checked.image
    have = image.distro.glibc if image else None
    if need is None or have is None:
        return need
    if version_key(have) < version_key(need):
        key = (
            ("base", "flavour")
            if checked.resolved.spec.base and checked.resolved.spec.base.flavour
            else ("base",)
        )
        raise SpecError(
            f"the locked packages need glibc >= {need}, but base '{image.id}' ({image.distro.tag}) has "  # type: ignore[union-attr]
            f"{have}: pick a newer base, or relock for this one",
            checked.resolved.loc(key),
        )
    return None


def installer_image(checked: Checked, lock: Lock | None) -> tuple[str, str]:
    """(FROM ref with mirrors and digest, the hashed ref) of the installer image."""
    conda = checked.resolved.spec.conda
    named = (
        conda.installer_image if conda and conda.installer_image else load_catalog().installer_image.pinned
    )
    mirrors = checked.resolved.spec.mirrors
    ref = mirror(named, mirrors.base_registry if mirrors else None)
    if not has_digest(ref) and lock is not None and (d := lock.base_digest(ref)):
        return f"{ref}@{d}", f"{named}@{d}"
    return ref, named


def env_install(checked: Checked, lock: Lock | None, platform: str) -> EnvInstall:
    spec = checked.resolved.spec
    conda = spec.conda
    # The installer no longer runs on the base, so the base's Python does not limit it.
    installer: Installer = (conda.installer if conda else None) or "rattler"
    download = None
    version = RATTLER_VERSION
    if installer != "rattler":
        where = checked.resolved.loc(("conda", "installer"))
        if platform != "linux-64":
            raise SpecError(
                f"installer '{installer}' is pinned for linux-64 only; use the default installer "
                f"(rattler) for {platform}",
                where,
            )
        # The newest pinned one, whatever conda the base has: it runs in the installer image,
        # and only a modern conda reads .conda packages and CONDA_OVERRIDE_* (4.5 does neither).
        entry = load_catalog().installer("miniconda" if installer == "conda" else "micromamba")
        if entry is None:
            raise SpecError(f"the catalog has no pinned {installer} installer", where)
        tool, value = entry.linux_64.check
        download = Download(
            url=entry.linux_64.url, algorithm="sha256" if tool == "sha256sum" else "md5", digest=value
        )
        version = entry.version
    image = checked.image
    if platform != NATIVE_PIP and image is not None and image.pip:
        raise SpecError(
            f"flavour '{image.id}' installs pip packages ({', '.join(sorted(image.pip))}) unlocked, "
            f"which cannot be cross-installed for {platform}",
            checked.resolved.loc(("base", "flavour")),
        )
    if lock is not None:
        if platform not in lock.platforms and lock.packages:
            raise SpecError(f"lock {lock.source} has no packages for platform {platform}")
        conda_file = f"conda-{platform}.lock"
        pip_file = f"requirements-{platform}.txt" if lock.for_platform(platform, "pip") else None
    else:
        conda_file = "environment.yml"
        # Index options alone (e.g. an environment.yml's pip-repositories) install nothing.
        pip_file = "requirements.txt" if conda and P.section(conda.pip).requirements else None
    ref, hashed = installer_image(checked, lock)
    cross = _cross_pip(checked, lock, platform) if pip_file else None
    channel_secrets = _channel_secrets(checked, lock, installer)
    pip_secrets = _pip_secrets(checked, lock, platform) if pip_file else ()
    return EnvInstall(
        installer=installer,
        installer_download=download,
        installer_version=version,
        installer_ref=ref,
        installer_image=hashed,
        locked=lock is not None,
        conda_file=conda_file,
        pip_file=pip_file,
        pip_hashes=lock is not None,
        pip_index=spec.mirrors.pypi_index if spec.mirrors else None,
        # Only the rattler installer is given one: conda's and micromamba's `clean` would
        # empty a shared cache, and their builds cannot be exercised here.
        package_cache=RATTLER_PACKAGE_CACHE if installer == "rattler" else None,
        glibc_check=_glibc_check(checked, lock, platform),
        cuda_override=quote(checked.cuda) if checked.cuda and lock is None else None,
        glibc_override=quote(solve_glibc(checked.image)) if lock is None else None,
        secrets=channel_secrets,
        pip_secrets=pip_secrets,
        layers=envlayers.groups(lock, platform, not (conda and conda.layers is False)),
        cross_pip=cross,
        # Only with the rattler installer (its venv runs canonical_urls.py); conda and micromamba record
        # the mirror's URLs too, but this cannot build them here to check a mapping.
        canonical_urls=url_table(spec.mirrors) if installer == "rattler" else (),
    )


def _cross_pip(checked: Checked, lock: Lock | None, platform: str) -> CrossPip | None:
    """Another platform's pip packages: its locked wheels, the only ones that install without
    running the target's Python (an sdist builds by running it)."""
    if platform == NATIVE_PIP:
        return None
    where = checked.resolved.loc(("conda", "pip"))
    if lock is None:
        raise SpecError(
            f"the pip section cannot be cross-installed for {platform} unlocked (only locked wheels "
            "are, never an sdist): run `layerkit lock`",
            where,
        )
    sdist = next((p for p in lock.for_platform(platform, "pip") if not p.url.endswith(".whl")), None)
    if sdist is not None:
        raise SpecError(
            f"pip package {sdist.name} {sdist.version} is locked as an sdist for {platform}, which "
            "cannot be cross-installed (building it runs the target's Python): pin a version with a wheel",
            where,
        )
    python = next((p.version for p in lock.for_platform(platform, "conda") if p.name == "python"), None)
    if python is None:
        raise SpecError(
            f"lock {lock.source} has no python for {platform}, which its pip packages need", where
        )
    major_minor = ".".join(python.split(".")[:2])
    if not re.fullmatch(r"[0-9]{1,3}\.[0-9]{1,3}", major_minor):
        # It reaches the RUN line: a lock is input like any other.
        raise SpecError(
            f"lock {lock.source}: python version {python!r} for {platform} is not a version", where
        )
    return CrossPip(python=major_minor, glibc=solve_glibc(checked.image))


def pip_credential_lines(checked: Checked) -> tuple[str, ...]:
    """The spec's index lines that carry `${NAME}` credentials. A locked requirements file
    keeps them: conda-lock records each package's URL without the index's user info, and pip
    sends an index's credentials to every URL on that index's host."""
    conda = checked.resolved.spec.conda
    lines = P.section(conda.pip).options.lines() if conda else ()
    return tuple(ln for ln in lines if ln.startswith(("--index-url", "--extra-index-url")) and "${" in ln)


def _pip_secrets(checked: Checked, lock: Lock | None, platform: str) -> tuple[str, ...]:
    conda = checked.resolved.spec.conda
    found = list(P.section(conda.pip).options.env_names() if conda else ())
    if lock is not None:  # a lock that kept `${NAME}` in a URL (pip expands it in the file too)
        found += CV.channel_names(p.url for p in lock.for_platform(platform, "pip"))
    names = tuple(dict.fromkeys(found))
    bad = [n for n in names if not ENV_NAME.fullmatch(n)]
    if bad:
        raise SpecError(f"'{bad[0]}' cannot name a build secret", checked.resolved.loc(("conda", "pip")))
    return names


def _channel_secrets(checked: Checked, lock: Lock | None, installer: Installer) -> tuple[str, ...]:
    """The variables the install needs: in the lock's package URLs, else in the channels."""
    spec = checked.resolved.spec
    if lock is not None:
        urls: tuple[str, ...] = tuple(p.url for p in lock.packages if p.manager == "conda")
    else:
        urls = M.resolved_channels(spec.conda, spec.mirrors)
    found = CV.channel_names(urls)
    if found and installer != "rattler":
        raise SpecError(
            f"channel URLs with ${{{found[0]}}} need the rattler installer: conda and micromamba "
            "would record the expanded URL in the image",
            checked.resolved.loc(("conda", "installer")),
        )
    bad = [n for n in found if not ENV_NAME.fullmatch(n)]
    if bad:  # the URL readers allow only these names; a hand-edited lock might not
        raise SpecError(f"'{bad[0]}' cannot name a build secret", checked.resolved.loc(("conda", "channels")))
    return found
