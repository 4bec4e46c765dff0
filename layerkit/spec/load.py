"""Read one spec file (layerkit YAML, conda environment.yml or hosted-platform JSON) into a
typed `Layer` that remembers where every value came from (file:line:col)."""

from __future__ import annotations

import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from layerkit import inputs
from layerkit.errors import Location, SpecError
from layerkit.spec.models import Spec

Key = tuple[str | int, ...]
Positions = dict[Key, tuple[int, int]]
Format = Literal[
    "layerkit", "environment.yml", "hosted-environment", "hosted-inference", "aml-v2", "aml-runconfig"
]

MAX_BYTES = 4 * 1024 * 1024  # a spec is small; refuse to parse anything huge


@dataclass(frozen=True)
class Layer:
    """One parsed, validated layer and the positions of its values."""

    source: str  # what errors print: a path, or "builtin:NAME"
    path: Path | None  # None for built-in layers
    format: Format
    spec: Spec
    positions: Positions = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def loc(self, key: Key) -> Location:
        """Position of `key`, or of its nearest ancestor that has one."""
        k = tuple(key)
        while k:
            if k in self.positions:
                line, col = self.positions[k]
                return Location(self.source, line, col)
            k = k[:-1]
        return Location(self.source, 1, 1)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def _plain(node: Any, key: Key, pos: Positions, source: str) -> Any:
    """Turn ruamel's round-trip nodes into plain data, recording 1-based positions."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for k, v in node.items():
            line, col = node.lc.key(k)
            if not isinstance(k, str):
                raise SpecError(f"keys must be strings, got {k!r}", Location(source, line + 1, col + 1))
            if v is not None and not isinstance(v, CommentedMap | CommentedSeq):
                # A scalar's own position: that is where a bad value is. A key with no value
                # keeps the key's (ruamel puts the missing value at the next token).
                vpos = node.lc.value(k)
                if vpos and vpos[0] is not None:
                    line, col = vpos
            name = _text(k, (line + 1, col + 1), source)
            pos[(*key, name)] = (line + 1, col + 1)
            out[name] = _plain(v, (*key, name), pos, source)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, v in enumerate(node):
            line, col = node.lc.item(i)
            pos[(*key, i)] = (line + 1, col + 1)
            items.append(_plain(v, (*key, i), pos, source))
        return items
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return _text(str(node), pos.get(key, (1, 1)), source)
    raise SpecError(f"unsupported YAML value {node!r}", Location(source, *pos.get(key, (1, 1))))


def _text(value: str, at: tuple[int, int], source: str) -> str:
    """JSON escapes such as "\\ud800\\udc00" reach us as surrogate halves: join or refuse them."""
    if not any("\ud800" <= ch <= "\udfff" for ch in value):
        return value
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError:
        raise SpecError("text holds an unpaired UTF-16 surrogate", Location(source, *at)) from None


def parse_text(text: str, source: str) -> tuple[Any, Positions]:
    """Parse YAML or JSON text into plain data plus positions; errors carry file:line:col."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if len(text) > MAX_BYTES:
        raise SpecError(f"file is larger than {MAX_BYTES} bytes", Location(source))
    try:
        data = _yaml().load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise SpecError(f"invalid YAML: {problem}", Location(source, line, col)) from None
    except (YAMLError, ValueError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"invalid YAML: {first}", Location(source)) from None
    pos: Positions = {}
    return _plain(data, (), pos, source), pos


_RUNCONFIG = {"script", "command", "framework", "communicator", "target"}


def detect_format(data: Any) -> Format:
    """Tell the input kinds apart by their keys, never by file name."""
    if not isinstance(data, dict):
        return "layerkit"
    keys = set(data)
    if "$schema" in keys and "environment.schema.json" in str(data["$schema"]):
        return "aml-v2"
    if "entryScript" in keys and ("environment" in keys or keys & {"condaFile", "runtime", "baseImage"}):
        return "hosted-inference"
    if "environment" in keys and isinstance(data["environment"], dict) and keys & _RUNCONFIG:
        return "aml-runconfig"
    if keys & {"image", "build", "conda_file"} and not keys & {
        "conda",
        "base",
        "extends",
        "python",
        "docker",
    }:
        return "aml-v2"
    hosted = {"python", "docker", "environmentVariables", "inferencingStackVersion", "spark"}
    if keys & hosted and not keys & {"conda", "base", "extends", "features"}:
        return "hosted-environment"
    layerkit_only = {"conda", "base", "extends", "features", "apt", "steps", "runtime"}
    if "dependencies" in keys and not keys & layerkit_only:
        return "environment.yml"
    return "layerkit"


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
        return f"unknown key '{key}' in {parent}{suggestion}"
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
        raise SpecError("a spec must be a mapping of keys to values", Location(source, 1, 1))
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()

        def where(err: Any) -> Location:
            key = tuple(p for p in err["loc"] if not _is_tag(p))
            while key and key not in pos:
                key = key[:-1]
            line, col = pos.get(key, (1, 1))
            return Location(source, line, col)

        first = min(errors, key=lambda e: (where(e).line, where(e).col))
        raise SpecError(_message(first, Spec), where(first)) from None


def load_file(path: Path) -> Layer:
    """Load one file of any supported format as a Layer."""
    from layerkit.spec.importers import import_data

    source = str(path)
    inputs.note(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"no such spec file: {path}") from None
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte {exc.start})", Location(source)) from None
    data, pos = parse_text(text, source)
    fmt = detect_format(data)
    data, pos, warnings = import_data(fmt, data, pos, source, path.parent, text)
    spec = validate_data(data, pos, source)
    return Layer(source, path, fmt, spec, pos, tuple(warnings))


def load_text(text: str, source: str, base_dir: Path | None = None) -> Layer:
    """Load spec text (e.g. a built-in layer or a test string) as a Layer."""
    from layerkit.spec.importers import import_data

    data, pos = parse_text(text, source)
    fmt = detect_format(data)
    data, pos, warnings = import_data(fmt, data, pos, source, base_dir or Path.cwd(), text)
    return Layer(source, None, fmt, validate_data(data, pos, source), pos, tuple(warnings))
