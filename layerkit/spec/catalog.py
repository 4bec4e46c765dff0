"""The base-image catalog (base-images/*.yaml) and the CUDA compatibility table.

Each catalog entry describes one curated base: the distro, what it ships, and the devel and
runtime image refs. Flavours are picked by id (`base.flavour`) or by matching features.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from layerkit.errors import Position, SpecError
from layerkit.spec.imageref import DIGEST, parse_image_ref
from layerkit.spec.models import MpiKind, OnnxFlavour, Platform, Str


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# glibc of each release's libc6 package (packages.ubuntu.com / packages.debian.org, package
# libc6 per release). Conda packages need only this from the base (`__glibc` in the lock).
DISTRO_GLIBC = {
    "ubuntu16.04": "2.23",
    "ubuntu18.04": "2.27",
    "ubuntu20.04": "2.31",
    "ubuntu22.04": "2.35",
    "ubuntu24.04": "2.39",
    "debian9": "2.24",
    "debian10": "2.28",
    "debian11": "2.31",
    "debian12": "2.36",
    "debian13": "2.41",
}


# The platforms every entry's `platforms` was researched for: a spec asking a flavour for one
# of these that it lacks is refused (spec/platforms.py). linux-ppc64le is not tracked yet, so
# it is neither claimed nor refused.
TRACKED_PLATFORMS: tuple[Platform, ...] = ("linux-64", "linux-aarch64")

DEFAULT_GLIBC = "2.17"  # conda-lock's own default when the base's distro is unknown


class Distro(_Model):
    name: Literal["ubuntu", "debian"]
    version: Str  # "22.04", "12"

    @property
    def tag(self) -> str:
        return f"{self.name}{self.version}"

    @property
    def glibc(self) -> str | None:
        return DISTRO_GLIBC.get(self.tag)


class Download(_Model):
    """A file fetched at build time; always verified by its published checksum (sha256, or
    md5 for old installers whose vendor published nothing else)."""

    url: str = Field(pattern=r"^https://[A-Za-z0-9._~/%+-]+$")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    md5: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")

    @model_validator(mode="after")
    def _has_checksum(self) -> Download:
        if not (self.sha256 or self.md5):
            raise ValueError("a download needs sha256 or md5")
        return self

    @property
    def check(self) -> tuple[str, str]:
        """(checksum tool, digest) for `echo "DIGEST  FILE" | TOOL -c -`."""
        return ("sha256sum", self.sha256) if self.sha256 else ("md5sum", self.md5 or "")


class Mpi(_Model):
    kind: MpiKind
    version: Str
    source: Download | None = None  # built from this tarball when the image lacks it


_APT_NAME = r"^[a-z0-9][a-z0-9+.-]*$"
_APT_PINNED = r"^[a-z0-9][a-z0-9+.-]*=[0-9][A-Za-z0-9.+:~-]*$"  # exact versions: no globs
_ABS_PATH = r"^/[A-Za-z0-9._/-]+$"


class AptRepo(_Model):
    """A flat apt repository (`deb ROOT/ARCH /`, ARCH per platform: render/cuda_apt.py), trusted
    only through the key ROOT/ARCH/KEY with this fingerprint."""

    root: str = Field(pattern=r"^https://[A-Za-z0-9._~/%+-]+[A-Za-z0-9]$")
    key: str = Field(pattern=r"^[A-Za-z0-9._-]+\.pub$")
    fingerprint: str = Field(pattern=r"^[0-9A-F]{40}$")  # full, so a look-alike short id cannot match


# The directory NVIDIA's apt repositories give each platform (repos/<distro>/<dir>): sbsa is
# arm64 servers (NVARCH in NVIDIA's nvidia/cuda Dockerfiles; Jetson has its own L4T repos).
NVIDIA_REPO_ARCH: dict[str, str] = {"linux-64": "x86_64", "linux-aarch64": "sbsa", "linux-ppc64le": "ppc64el"}


class CudaApt(_Model):
    """CUDA installed from NVIDIA's apt repositories on a plain distro image, as NVIDIA's own
    Dockerfiles did; used where the nvidia/cuda tags no longer exist."""

    repos: tuple[AptRepo, ...] = Field(min_length=1)
    bootstrap: tuple[Annotated[str, Field(pattern=_APT_NAME)], ...]  # from the distro, to fetch the keys
    packages: tuple[Annotated[str, Field(pattern=_APT_PINNED)], ...] = Field(min_length=1)
    toolkit: str = Field(pattern=r"^cuda-[0-9]+\.[0-9]+$")  # /usr/local/<toolkit>, linked as /usr/local/cuda
    path: tuple[Annotated[str, Field(pattern=_ABS_PATH)], ...] = ()  # prepended to PATH
    ld_library_path: tuple[Annotated[str, Field(pattern=_ABS_PATH)], ...] = ()
    env: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], Str] = Field(default_factory=dict)


class CatalogImage(_Model):
    id: str
    description: str
    distro: Distro
    devel: str
    runtime: str
    python: Str  # the Python the env stage gets when the spec does not pin one
    conda: Str | None = None  # conda version the installer stage provides
    cuda: Str | None = None
    cudnn: Str | None = None
    nccl: Str | None = None
    mpi: Mpi | None = None
    onnxruntime: OnnxFlavour | None = None
    apt: tuple[str, ...] = ()  # extra pinned apt packages (cuDNN/NCCL, accelerator runtimes)
    pip: tuple[str, ...] = ()  # extra pinned pip packages (the ONNX Runtime build)
    env: dict[str, Str] = Field(default_factory=dict)
    cuda_apt: CudaApt | None = None  # CUDA built in the base stage (devel/runtime are the plain distro)
    # The platforms (of TRACKED_PLATFORMS) this flavour has a variant for: its base images, the
    # packages and wheels it installs; platform_sources says where each claim was read.
    platforms: tuple[Platform, ...] = Field(min_length=1)
    platform_sources: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _tracked(self) -> CatalogImage:
        if untracked := [p for p in self.platforms if p not in TRACKED_PLATFORMS]:
            raise ValueError(f"platforms: {untracked[0]} is not tracked by the catalog")
        if len(set(self.platforms)) != len(self.platforms):
            raise ValueError("platforms: listed twice")
        return self


class CompatRule(_Model):
    cuda: Str
    cudnn: tuple[Str, ...]
    nccl: tuple[Str, ...]
    distros: tuple[str, ...]  # Distro.tag values
    min_driver: Str


class Installer(_Model):
    """Pinned installer downloads (Miniconda, micromamba), verified by sha256."""

    name: str
    version: Str
    linux_64: Download


class InstallerImage(_Model):
    """The image the env installer runs in (base-images/installer-image.yaml)."""

    ref: str  # a tag, so mirrors and readers see what it is
    digest: str = Field(pattern=f"^{DIGEST.pattern}$")
    python: Str
    source: str  # where the digest is recorded

    @property
    def pinned(self) -> str:
        return f"{self.ref}@{self.digest}"


class DigestRecord(_Model):
    """A digest as a public record states it for `ref` (repository:tag). The catalog pins only
    digests found this way, never computed or guessed ones."""

    ref: str
    digest: str = Field(pattern=f"^{DIGEST.pattern}$")
    source: str = Field(pattern=r"^https://[^\s]+$")


class Catalog(_Model):
    images: tuple[CatalogImage, ...]
    compat: tuple[CompatRule, ...]
    installers: tuple[Installer, ...]
    installer_image: InstallerImage
    digests: tuple[DigestRecord, ...] = ()

    def get(self, image_id: str) -> CatalogImage | None:
        return next((i for i in self.images if i.id == image_id), None)

    def by_ref(self, ref: str) -> CatalogImage | None:
        # A flavour that builds CUDA in its base stage is more than its plain distro ref.
        return next((i for i in self.images if ref in (i.devel, i.runtime) and i.cuda_apt is None), None)

    def with_platform(self, platform: str) -> tuple[str, ...]:
        """The ids of the flavours with a `platform` variant."""
        return tuple(i.id for i in self.images if platform in i.platforms)

    def ref_problems(self) -> list[str]:
        """Catalog refs that do not parse, or pin a digest the record does not give for their tag."""
        recorded = {(r.ref, r.digest) for r in self.digests}
        problems = []
        refs = [
            (image.id, ref) for image in self.images for ref in dict.fromkeys((image.devel, image.runtime))
        ]
        for owner, ref in [*refs, ("installer-image", self.installer_image.pinned)]:
            parsed = parse_image_ref(ref)
            if parsed is None or parsed.tag is None:
                problems.append(f"{owner}: '{ref}' is not an image reference with a tag")
            elif parsed.digest:
                tagged = replace(parsed, digest=None).familiar
                if (tagged, parsed.digest) not in recorded:
                    problems.append(
                        f"{owner}: no record in digests.yaml gives {parsed.digest} for '{tagged}'"
                    )
        return problems

    def installer(self, name: str) -> Installer | None:
        """The pinned installer `name` (miniconda, micromamba)."""
        return next((i for i in self.installers if i.name == name), None)

    def compat_rule(self, cuda: str) -> CompatRule | None:
        return next((r for r in self.compat if cuda == r.cuda or cuda.startswith(r.cuda + ".")), None)


def _load_yaml(text: str, source: str) -> object:
    # Catalog files need no positions: the C-accelerated safe loader is ~20x faster than
    # the round-trip one, which matters for the whole-process time of every command.
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise SpecError(
            f"invalid YAML in the catalog: {str(exc).splitlines()[0]}", Position(source)
        ) from None


def catalog_documents() -> dict[str, object]:
    """Each base-images/ YAML file (relative path) parsed: from the shipped JSON parse of
    exactly these bytes when there is one (layerkit/precompiled.py), else from the YAML."""
    from layerkit import precompiled
    from layerkit.resources import data_dir

    files = precompiled.catalog_files(data_dir("base-images"))
    parsed = precompiled.parsed_catalog(files)
    if parsed is not None:
        return parsed
    return {name: _load_yaml(data.decode("utf-8"), f"base-images/{name}") for name, data in files}


@cache
def load_catalog() -> Catalog:
    """Read base-images/: images/*.yaml, compat.yaml, installers.yaml, digests.yaml."""
    docs = catalog_documents()
    images = []
    for name in sorted(n for n in docs if n.startswith("images/")):
        entry = name.removeprefix("images/")
        try:
            image = CatalogImage.model_validate(docs[name])
        except ValidationError as exc:
            raise SpecError(f"bad catalog entry: {exc.errors()[0]['msg']}", Position(entry)) from None
        if image.id != entry[:-5]:
            raise SpecError(f"catalog id {image.id!r} does not match its file name", Position(entry))
        images.append(image)
    compat = docs.get("compat.yaml")
    installers = docs.get("installers.yaml")
    installer_image = docs.get("installer-image.yaml")
    digests = docs.get("digests.yaml")
    catalog = Catalog.model_validate(
        {
            "images": images,
            "compat": compat,
            "installers": installers,
            "installer_image": installer_image,
            "digests": digests,
        }
    )
    if problems := catalog.ref_problems():
        raise SpecError(f"bad catalog ref: {problems[0]}", Position("base-images/digests.yaml"))
    return catalog


def solve_glibc(image: CatalogImage | None) -> str:
    """The __glibc a solve assumes: the catalog base's, else conda-lock's default."""
    return (image.distro.glibc if image else None) or DEFAULT_GLIBC
