"""The typed spec model: one layer of a layerkit spec; `None` means "unset in this layer".

Merge behaviour is derived from these types (see merge.py): scalars later-wins, tuples
ordered union, dicts deep merge, nested models recursive. `Annotated` markers below refine
that for fields where plain union would be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from layerkit.spec.serve import Serve


@dataclass(frozen=True)
class KeyedBy:
    """Merge marker: list items with the same key replace each other (later layer wins)."""

    key: str  # name of a function in merge.KEY_FUNCS


@dataclass(frozen=True)
class StrictOrder:
    """Merge marker: order is semantic; layers listing shared items in another order conflict."""


def _to_str(value: object) -> object:
    # YAML reads `version: 1` or `cuda: 11.8` as numbers; users mean strings.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


Str = Annotated[str, BeforeValidator(_to_str)]
Platform = Literal["linux-64", "linux-aarch64", "linux-ppc64le"]
MpiKind = Literal["openmpi", "intelmpi"]
OnnxFlavour = Literal["cpu", "cuda", "tensorrt", "openvino", "openvino-vadm", "openvino-myriad"]
Installer = Literal["conda", "micromamba", "rattler"]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BaseRegistry(Model):
    """The registry the base image is pulled from (Azure ML's baseImageRegistry)."""

    address: str | None = None  # host[:port][/path]; prefixed to a base.image that names no host
    username_env: str | None = None  # NAME of the env var holding the user, never the value
    password_env: str | None = None


class Base(Model):
    """Where the image starts: exactly one of image, dockerfile, dockerfile_file or flavour."""

    # Setting one of these in a layer replaces whichever an earlier layer set.
    EXCLUSIVE: ClassVar[tuple[str, ...]] = ("image", "dockerfile", "dockerfile_file", "flavour")

    image: str | None = None
    dockerfile: str | None = None
    dockerfile_file: str | None = None
    flavour: str | None = None
    distro: str | None = None  # e.g. "ubuntu22.04"; picks a catalog flavour with features
    digest: str | None = None  # sha256:... pin of the base image
    # Folder a dockerfile_file's COPY/ADD read (relative to the spec); default: the file's folder
    context: str | None = None
    registry: BaseRegistry | None = None  # where base.image is pulled from, and with whose credentials


class Conda(Model):
    channels: Annotated[tuple[str, ...] | None, StrictOrder()] = None
    dependencies: Annotated[tuple[str, ...] | None, KeyedBy("conda")] = None
    pip: Annotated[tuple[str, ...] | None, KeyedBy("pip")] = None
    installer: Installer | None = None
    # Image the installer runs in (its own stage, so the base needs no Python); default: the
    # catalog's pinned one. A tag without a digest is pinned by the lock.
    installer_image: str | None = None
    # A locked /opt/env ships as one layer per big package family (render/envlayers.py) and
    # one for the rest, so an update sends only its group's layer; false: one layer.
    layers: bool | None = None


class Gpu(Model):
    cuda: Str | None = None
    cudnn: Str | None = None
    nccl: Str | None = None


class Features(Model):
    datasets: bool | None = None
    mpi: MpiKind | None = None
    gpu: Gpu | None = None
    onnxruntime: OnnxFlavour | None = None


class Runtime(Model):
    user: str | None = None  # the image's USER
    uid: int | None = Field(default=None, ge=1, le=2**31 - 1)
    workdir: str | None = None  # the image's WORKDIR; where `run` mounts the source
    shm_size: Str | None = None  # `run`: the container's /dev/shm size (not part of the image)
    # `run`: a user-managed image's interpreter, used for a leading `python`/`python3`
    python: str | None = None


class Step(Model):
    """One custom Docker step: a shell command (str) or exec form (list)."""

    run: str | tuple[str, ...]
    stage: Literal["base", "final"] | None = None  # base: before the env; final: after it


class Registry(Model):
    address: str | None = None  # e.g. registry.example.com:5000/team
    repository: str | None = None  # image repository under address, default "layerkit"
    username_env: str | None = None  # NAME of the env var holding the user, never the value
    password_env: str | None = None
    global_registries: tuple[str, ...] | None = None  # looked up after the workspace one
    # cosign public key (a file, relative to the layer that sets it, or a cosign key URL):
    # reuse an image only if its signature verifies; as `build --require-signature`
    require_signature: str | None = None


class Mirrors(Model):
    channel_alias: str | None = None  # base URL that bare channel names resolve against
    channels: dict[str, str] | None = None  # channel name or URL -> mirror URL
    pypi_index: str | None = None
    base_registry: str | None = None  # replaces the registry host of catalog base images


class Spec(Model):
    """One layer. A merged spec is a Spec too: every field as the last layer set it."""

    name: str | None = None
    version: Str | None = None
    description: str | None = None
    extends: tuple[str, ...] | None = None
    base: Base | None = None
    platforms: tuple[Platform, ...] | None = None
    conda: Conda | None = None
    apt: tuple[str, ...] | None = None
    steps: tuple[Step, ...] | None = None
    env: dict[str, Str] | None = None
    features: Features | None = None
    user_managed: bool | None = None
    runtime: Runtime | None = None
    registry: Registry | None = None
    mirrors: Mirrors | None = None
    serve: Serve | None = None  # deploying it as a web service (spec/serve.py)
