"""Resolve `extends` depth-first and merge layers; every merged value keeps its origin.

Merge rules come from the model's types: scalars later-wins, tuples ordered union, dicts
deep merge, nested models recursive; `KeyedBy` lists replace items with the same key,
`StrictOrder` lists refuse layers that order shared items differently (as conda-lock does
for channels).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from layerkit.errors import Position, SpecError
from layerkit.spec.load import Layer, load_file, load_text
from layerkit.spec.models import KeyedBy, Spec, StrictOrder
from layerkit.spec.parse import Key

BUILTIN_PREFIX = "layerkit:"
Provenance = dict[Key, Position]


@dataclass(frozen=True)
class BuiltinLayer:
    extends: str  # as written in `extends:` ("layerkit:cpu")
    description: str  # the layer file's header comment
    keys: tuple[str, ...]  # the top-level spec keys it sets


def builtin_layers() -> list[BuiltinLayer]:
    """The layers shipped in base-images/layers/, by name."""
    from layerkit.resources import data_dir

    out = []
    files = [p for p in (data_dir("base-images") / "layers").iterdir() if p.name.endswith(".yaml")]
    for path in sorted(files, key=lambda p: p.name):
        text = path.read_text(encoding="utf-8")
        header = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
        about = " ".join(header).split(" — ", 1)[-1]
        keys = tuple(re.findall(r"^([a-z_]+):", text, re.MULTILINE))  # block-style top-level keys
        out.append(BuiltinLayer(f"{BUILTIN_PREFIX}{path.name[:-5]}", about, keys))
    return out


def conda_key(spec: str) -> str:
    """Package name of a conda MatchSpec ("conda-forge::numpy>=1" -> "numpy")."""
    from layerkit.spec.matchspec import name_of

    return name_of(spec) or spec.strip().lower()


def pip_key(spec: str) -> str:
    """Canonical project name of a pip requirement; an option's name (or name and value)."""
    from layerkit.spec.pip import line_key

    return line_key(spec)


KEY_FUNCS: dict[str, Callable[[str], str]] = {"conda": conda_key, "pip": pip_key}


@dataclass(frozen=True)
class Resolved:
    """A merged spec, the layers it came from (in merge order) and where each value came from."""

    spec: Spec
    layers: tuple[Layer, ...]
    provenance: Provenance

    @property
    def root(self) -> Layer:
        return self.layers[-1]

    def loc(self, key: Key) -> Position:
        k = tuple(key)
        while k:
            if k in self.provenance:
                return self.provenance[k]
            k = k[:-1]
        return Position(self.root.source, 1, 1)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for layer in self.layers for w in layer.warnings)


def _check_keyed_lists(value: Any, key: Key, layer: Layer) -> None:
    """Every keyed list (dependencies, pip) of one layer, before it merges."""
    if not isinstance(value, BaseModel):
        return
    for name, info in type(value).model_fields.items():
        field = getattr(value, name)
        marker = next((m for m in info.metadata if isinstance(m, KeyedBy)), None)
        if marker is not None and isinstance(field, tuple):
            _no_duplicates(field, KEY_FUNCS[marker.key], marker.key, (*key, name), layer)
        else:
            _check_keyed_lists(field, (*key, name), layer)


def _no_duplicates(new: tuple[Any, ...], fn: Callable[[str], str], kind: str, key: Key, layer: Layer) -> None:
    """One list naming a package twice is an error (a later layer replacing it is merging)."""
    from layerkit.spec.pip import option, project_name

    seen: dict[str, int] = {}
    for j, v in enumerate(new):
        if not isinstance(v, str) or (kind == "pip" and (option(v) is not None or project_name(v) is None)):
            continue  # options (a repeated index is the same index), local paths (refused later)
        k = fn(v)
        if k in seen and new[seen[k]].strip() != v.strip():  # the same line twice says one thing
            first = seen[k]
            raise SpecError(
                f"'{v}' names the package '{k}' again (line {layer.loc((*key, first)).line}: "
                f"'{new[first]}'); keep one of them",
                layer.loc((*key, j)),
            )
        seen[k] = j


def _merge_list(old: tuple[Any, ...], new: tuple[Any, ...], marker: object, key: Key,
                prov: Provenance, layer: Layer) -> tuple[Any, ...]:  # fmt: skip
    old_prov = {i: prov.pop((*key, i)) for i in range(len(old)) if (*key, i) in prov}
    items: list[tuple[Any, Position | None]] = [(v, old_prov.get(i)) for i, v in enumerate(old)]
    if isinstance(marker, KeyedBy):
        fn = KEY_FUNCS[marker.key]
        index = {fn(v): i for i, (v, _) in enumerate(items)}
        for j, v in enumerate(new):
            item = (v, layer.loc((*key, j)))
            if fn(v) in index:
                items[index[fn(v)]] = item
            else:
                index[fn(v)] = len(items)
                items.append(item)
    else:
        if isinstance(marker, StrictOrder):
            shared_old = [v for v in old if v in new]
            shared_new = [v for v in new if v in old]
            if shared_old != shared_new:
                raise SpecError(
                    f"{'.'.join(map(str, key))}: order {list(shared_new)} conflicts with "
                    f"{list(shared_old)} from an earlier layer; channel order is priority, "
                    "so list shared channels in the same order everywhere",
                    layer.loc(key),
                )
        present = [v for v, _ in items]
        for j, v in enumerate(new):
            if v in present:
                continue
            # Keep priority: insert before the next item this layer lists after it.
            later = [present.index(w) for w in new[j + 1 :] if w in present]
            at = min(later) if later else len(items)
            items.insert(at, (v, layer.loc((*key, j))))
            present.insert(at, v)
    for i, (_, loc) in enumerate(items):
        if loc is not None:
            prov[(*key, i)] = loc
    return tuple(v for v, _ in items)


def _merge(old: Any, new: Any, marker: object, key: Key, prov: Provenance, layer: Layer) -> Any:
    if new is None:
        return old
    if isinstance(new, BaseModel) and isinstance(old, BaseModel):
        return _merge_model(old, new, key, prov, layer)
    if isinstance(new, tuple) and isinstance(old, tuple):
        prov[key] = layer.loc(key)
        return _merge_list(old, new, marker, key, prov, layer)
    if isinstance(new, dict) and isinstance(old, dict):
        merged = dict(old)
        for k, v in new.items():
            merged[k] = _merge(old.get(k), v, None, (*key, k), prov, layer)
        prov[key] = layer.loc(key)
        return merged
    # Later layer wins: forget the origins of whatever it replaces.
    for k in [k for k in prov if k[: len(key)] == key]:
        del prov[k]
    _record(new, key, prov, layer)
    return new


def _record(value: Any, key: Key, prov: Provenance, layer: Layer) -> None:
    prov[key] = layer.loc(key)
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            if getattr(value, name) is not None:
                _record(getattr(value, name), (*key, name), prov, layer)
    elif isinstance(value, tuple):
        for i, v in enumerate(value):
            _record(v, (*key, i), prov, layer)
    elif isinstance(value, dict):
        for k, v in value.items():
            _record(v, (*key, k), prov, layer)


def _merge_model(old: BaseModel, new: BaseModel, key: Key, prov: Provenance, layer: Layer) -> Any:
    values: dict[str, Any] = {}
    exclusive: tuple[str, ...] = getattr(type(new), "EXCLUSIVE", ())
    if any(getattr(new, f) is not None for f in exclusive):
        old = old.model_copy(update=dict.fromkeys(exclusive))
        for k in [k for k in prov if k[: len(key) + 1] in {(*key, f) for f in exclusive}]:
            del prov[k]
    for name, info in type(new).model_fields.items():
        marker = next((m for m in info.metadata if isinstance(m, KeyedBy | StrictOrder)), None)
        values[name] = _merge(getattr(old, name), getattr(new, name), marker, (*key, name), prov, layer)
    return type(new).model_validate(values)


def merge_layers(layers: list[Layer]) -> Resolved:
    """Fold layers left to right; `extends` of the result is the root layer's own."""
    spec = Spec()
    prov: Provenance = {}
    for layer in layers:
        _check_keyed_lists(layer.spec, (), layer)
        spec = _merge(spec, layer.spec.model_copy(update={"extends": None}), None, (), prov, layer)
    root = layers[-1].spec
    spec = spec.model_copy(update={"extends": root.extends})
    return Resolved(spec, tuple(layers), prov)


def _load_ref(ref: str, parent: Layer, index: int) -> Layer:
    loc = parent.loc(("extends", index))
    if ref.startswith(BUILTIN_PREFIX):
        from layerkit.resources import data_dir

        name = ref[len(BUILTIN_PREFIX) :]
        layers_dir = data_dir("base-images") / "layers"
        target = layers_dir / f"{name}.yaml"
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name) or not target.is_file():
            known = sorted(p.name[:-5] for p in layers_dir.iterdir() if p.name.endswith(".yaml"))
            raise SpecError(f"unknown built-in layer '{ref}'; known: {', '.join(known)}", loc)
        return load_text(target.read_text(encoding="utf-8"), f"builtin:{name}")
    if parent.path is None:
        raise SpecError(f"built-in layers may only extend built-in layers, not '{ref}'", loc)
    path = (parent.path.parent / ref).resolve()
    if not path.is_file():
        raise SpecError(f"extends '{ref}': no such file {path}", loc)
    return load_file(path)


def _identity(layer: Layer) -> str:
    return str(layer.path.resolve()) if layer.path else layer.source


def resolve(root: Layer | Path) -> Resolved:
    """Load a spec and its `extends` (depth-first, each layer once) and merge them."""
    top = load_file(root) if isinstance(root, Path) else root
    order: list[Layer] = []
    seen: set[str] = set()

    def visit(layer: Layer, stack: list[str]) -> None:
        ident = _identity(layer)
        for i, ref in enumerate(layer.spec.extends or ()):
            child = _load_ref(ref, layer, i)
            cid = _identity(child)
            if cid in stack or cid == ident:
                chain = " -> ".join([*stack, ident, cid])
                raise SpecError(f"extends cycle: {chain}", layer.loc(("extends", i)))
            if cid not in seen:
                visit(child, [*stack, ident])
        if ident not in seen:
            seen.add(ident)
            order.append(layer)

    visit(top, [])
    return merge_layers(order)
