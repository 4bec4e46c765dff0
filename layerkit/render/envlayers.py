"""Which layers /opt/env ships as: the lock's conda packages grouped by the families of
base-images/env-layers.yaml (CUDA libraries, cuDNN, torch, ...), each group a layer of its own,
before one last layer with everything else.

The groups are a function of the lock's package names alone, in the catalog's order: a new
version of one package changes the files of its group's layer only, so a registry that holds
the image before receives that layer and no other (an update of torch sends torch, not CUDA).
Without a lock the env is one layer: the names are not known before the build.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from layerkit.errors import Position, SpecError
from layerkit.lock.model import Lock

CATALOG_FILE = "env-layers.yaml"
GROUPS_ROOT = "/layerkit/groups"  # in the env stage: one folder per group, laid out as the prefix


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Family(_Model):
    """A catalog group: a name (its folder and the layer's comment) and package name patterns."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    packages: tuple[Annotated[str, Field(pattern=r"^[a-z0-9*?._-]+$")], ...] = Field(min_length=1)


class LayerGroup(_Model):
    """One layer of /opt/env: the locked conda packages (names, sorted) whose files it holds."""

    name: str
    packages: tuple[str, ...]

    @property
    def folder(self) -> str:
        return f"{GROUPS_ROOT}/{self.name}"


@cache
def families() -> tuple[Family, ...]:
    from layerkit.spec.catalog import catalog_documents

    try:
        found = TypeAdapter(tuple[Family, ...]).validate_python(catalog_documents().get(CATALOG_FILE, ()))
    except ValidationError as exc:
        raise SpecError(f"bad env layer family: {exc.errors()[0]['msg']}", Position(CATALOG_FILE)) from None
    if len({f.name for f in found}) != len(found):
        raise SpecError("env layer families must have distinct names", Position(CATALOG_FILE))
    return found


def groups(lock: Lock | None, platform: str, enabled: bool = True) -> tuple[LayerGroup, ...]:
    """The groups split off /opt/env for `platform`, in layer order (the rest is not one of them)."""
    if lock is None or not enabled:
        return ()
    names = sorted({p.name for p in lock.for_platform(platform, "conda")})
    members: dict[str, list[str]] = {}
    for name in names:
        family = next((f for f in families() if any(fnmatchcase(name, p) for p in f.packages)), None)
        if family is not None:
            members.setdefault(family.name, []).append(name)
    return tuple(
        LayerGroup(name=f.name, packages=tuple(members[f.name])) for f in families() if f.name in members
    )


def groups_file(layers: tuple[LayerGroup, ...]) -> str:
    """The env stage's context file templates/split_env.py reads: folder -> package names."""
    import json

    doc = {"groups": [{"folder": g.folder, "packages": list(g.packages)} for g in layers]}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
