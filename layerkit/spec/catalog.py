"""The base-image catalog (base-images/*.yaml) and the CUDA compatibility table.

Each catalog entry describes one curated base: the distro, what it ships, and the devel and
runtime image refs. Flavours are picked by id (`base.flavour`) or by matching features.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from layerkit.errors import Location, SpecError
from layerkit.spec.models import MpiKind, OnnxFlavour, Str


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
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    python: Str
    source: str  # where the digest is recorded

    @property
    def pinned(self) -> str:
        return f"{self.ref}@{self.digest}"


class Catalog(_Model):
    images: tuple[CatalogImage, ...]
    compat: tuple[CompatRule, ...]
    installers: tuple[Installer, ...]
    installer_image: InstallerImage

    def get(self, image_id: str) -> CatalogImage | None:
        return next((i for i in self.images if i.id == image_id), None)

    def by_ref(self, ref: str) -> CatalogImage | None:
        return next((i for i in self.images if ref in (i.devel, i.runtime)), None)

    def installer(self, name: str, version: str | None = None) -> Installer | None:
        """The pinned installer `name`, at `version` when the catalog has it, else the first."""
        named = [i for i in self.installers if i.name == name]
        return next((i for i in named if i.version == version), named[0] if named else None)

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
            f"invalid YAML in the catalog: {str(exc).splitlines()[0]}", Location(source)
        ) from None


@cache
def load_catalog() -> Catalog:
    """Read base-images/: images/*.yaml, compat.yaml, installers.yaml."""
    from layerkit.resources import data_dir

    root = data_dir("base-images")
    images = []
    for entry in sorted((root / "images").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = _load_yaml(entry.read_text(encoding="utf-8"), f"base-images/images/{entry.name}")
        try:
            image = CatalogImage.model_validate(data)
        except ValidationError as exc:
            raise SpecError(f"bad catalog entry: {exc.errors()[0]['msg']}", Location(entry.name)) from None
        if image.id != entry.name[:-5]:
            raise SpecError(f"catalog id {image.id!r} does not match its file name", Location(entry.name))
        images.append(image)
    compat = _load_yaml((root / "compat.yaml").read_text(encoding="utf-8"), "compat.yaml")
    installers = _load_yaml((root / "installers.yaml").read_text(encoding="utf-8"), "installers.yaml")
    installer_image = _load_yaml(
        (root / "installer-image.yaml").read_text(encoding="utf-8"), "installer-image.yaml"
    )
    return Catalog.model_validate(
        {"images": images, "compat": compat, "installers": installers, "installer_image": installer_image}
    )
