"""Read one spec file (layerkit YAML, conda environment.yml or hosted-platform JSON) into a
typed `Layer` that remembers where every value came from (file:line:col). Parsing is
spec/parse.py's, importing other formats spec/importers.py's; both sit below this module."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from layerkit import inputs
from layerkit.errors import Position, SpecError, excerpt
from layerkit.spec import aml, azdeploy, formats
from layerkit.spec import importers as I
from layerkit.spec.models import Spec
from layerkit.spec.parse import MAX_BYTES, Format, Key, Positions, _Out, detect_format, parse_text


@dataclass(frozen=True)
class Layer:
    """One parsed, validated layer and the positions of its values."""

    source: str  # what errors print: a path, or "builtin:NAME"
    path: Path | None  # None for built-in layers
    format: Format
    spec: Spec
    positions: Positions = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def loc(self, key: Key) -> Position:
        """Position of `key`, or of its nearest ancestor that has one."""
        k = tuple(key)
        while k:
            if k in self.positions:
                line, col = self.positions[k]
                return Position(self.source, line, col)
            k = k[:-1]
        return Position(self.source, 1, 1)


def _field_names(model: type[BaseModel], path: Key) -> list[str]:
    """Names allowed at `path` inside `model`, for "did you mean" hints."""
    import typing

    current: Any = model
    for part in path:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return []
        ann = info.annotation
        nxt = None
        for arg in (ann, *typing.get_args(ann)):
            for inner in (arg, *typing.get_args(arg)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    nxt = inner
        current = nxt
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _is_tag(part: object) -> bool:
    """Pydantic inserts union-member tags such as 'str' or 'tuple[str, ...]' into error paths."""
    return isinstance(part, str) and (
        part in _TYPE_TAGS or re.fullmatch(r"(tuple|list|dict|function-\w+)\[.*\]", part) is not None
    )


def _message(err: Any, model: type[BaseModel]) -> str:
    loc = [p for p in err["loc"] if not _is_tag(p)]
    where = ".".join(str(p) for p in loc) or "spec"
    if err["type"] == "extra_forbidden" and loc:
        key = str(loc[-1])
        allowed = _field_names(model, tuple(loc[:-1]))
        hint = difflib.get_close_matches(key, allowed, n=1)
        parent = ".".join(str(p) for p in loc[:-1]) or "the top level"
        suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}"
        return f"unknown key {excerpt(key)} in {parent}{suggestion}"
    msg = str(err["msg"])
    key = ".".join(str(p) for p in loc[:2])
    form = _FORMS.get(key) if err["type"] in ("dict_type", "string_type") else None
    return f"{where}: {msg[0].lower()}{msg[1:]}" + (f"; {form}" if form else "")


# What a mapping-valued setting looks like, for the message when it is given another shape.
_FORMS = {
    "mirrors": "write a mapping: mirrors: {channel_alias: URL, channels: {NAME: URL}, pypi_index: URL, base_registry: HOST}",
    "mirrors.channels": "write a map of channel name (or URL) to mirror URL, e.g. channels: {conda-forge: 'http://mirror.internal/conda-forge'}; to redirect every bare channel name use mirrors.channel_alias: URL",
}


_TYPE_TAGS = {"str", "int", "float", "bool", "tuple", "list", "dict", "function-before"}


def validate_data(data: Any, pos: Positions, source: str) -> Spec:
    """Validate plain data into a Spec; the first error (by position) becomes a SpecError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping of keys to values", Position(source, 1, 1))
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()

        def where(err: Any) -> Position:
            key = tuple(p for p in err["loc"] if not _is_tag(p))
            while key and key not in pos:
                key = key[:-1]
            line, col = pos.get(key, (1, 1))
            return Position(source, line, col)

        first = min(errors, key=lambda e: (where(e).line, where(e).col))
        raise SpecError(_message(first, Spec), where(first)) from None


def load_file(path: Path) -> Layer:
    """Load one file of any supported format as a Layer."""
    source = str(path)
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        # Its name goes into lock files, Dockerfile comments and JSON output, all UTF-8.
        raise SpecError("the file name is not UTF-8; rename the file", Position(source)) from None
    if not os.path.lexists(path):
        raise SpecError(f"no such spec file: {path}", Position(source))
    text = inputs.read_text(path, "spec file", max_bytes=MAX_BYTES)
    data, pos = parse_text(text, source)
    fmt = detect_format(data)
    data, pos, warnings = import_data(fmt, data, pos, source, path.parent, text)
    spec = validate_data(data, pos, source)
    return Layer(source, path, fmt, spec, pos, tuple(warnings))


def load_text(text: str, source: str, base_dir: Path | None = None) -> Layer:
    """Load spec text (e.g. a built-in layer or a test string) as a Layer."""
    data, pos = parse_text(text, source)
    fmt = detect_format(data)
    data, pos, warnings = import_data(fmt, data, pos, source, base_dir or Path.cwd(), text)
    return Layer(source, None, fmt, validate_data(data, pos, source), pos, tuple(warnings))


def import_data(
    fmt: Format, data: Any, pos: Positions, source: str, base_dir: Path, text: str | None = None
) -> tuple[Any, Positions, list[str]]:
    """Return layerkit-shaped data, its positions and import warnings; `text` is the file as
    written, for conda-lock's platform selectors (comments YAML drops). Here, not in
    importers.py: aml.py builds on importers.py's hosted format, so the choice sits above both."""
    warnings: list[str] = []
    if fmt == "layerkit":
        formats.check(data, pos, source)
        conda: dict[str, Any] = data.get("conda") if isinstance(data, dict) else None  # type: ignore[assignment]
        deps = conda.get("dependencies") if isinstance(conda, dict) else None
        if isinstance(conda, dict) and isinstance(deps, list) and any(isinstance(d, dict) for d in deps):
            out = _Out(pos, source)
            I._split_pip(deps, out, ("conda", "dependencies"), ("conda",))
            if "pip" in conda and "pip" in out.data["conda"]:
                raise SpecError("pip packages are listed twice: in conda.pip and as a dependencies item",
                                out.loc(("conda", "pip")))  # fmt: skip
            data = {**data, "conda": {**conda, **out.data["conda"]}}
            pos = {**pos, **out.new_pos}
        return data, pos, warnings
    out = _Out(pos, source)
    if fmt == "environment.yml":
        I._env_yml(data, out, warnings, text)
    elif fmt == "hosted-environment":
        I.hosted(data, out, (), base_dir, warnings)
    elif fmt == "aml-v2":
        aml.v2(data, out, base_dir, warnings)
    elif fmt == "aml-deployconfig":
        azdeploy.v1(data, out, warnings)
    elif fmt == "aml-online-deployment":
        azdeploy.v2(data, out, warnings)
    elif fmt == "aml-runconfig":
        job = sorted(k for k in data if k != "environment")
        if job:
            warnings.append(f"{out.loc((job[0],))}: warning: {', '.join(job)}: job settings, not part of the "
                            "image; layerkit reads only the runconfig's 'environment' section")  # fmt: skip
        I.hosted(data["environment"], out, ("environment",), base_dir, warnings)
    else:
        aml.inference(data, out, base_dir, warnings)
    return out.data, out.new_pos, warnings
