"""Spec text to plain data: YAML or JSON parsed into dicts, lists and scalars with the
file:line:col of every value, and which input format those keys are. Below load.py and the
importers (importers.py, aml.py, ...), which both read these types."""

from __future__ import annotations

import io
from typing import Any, Literal

from layerkit.errors import Position, SpecError

Key = tuple[str | int, ...]
Positions = dict[Key, tuple[int, int]]
Format = Literal[
    "layerkit", "environment.yml", "hosted-environment", "hosted-inference", "aml-v2", "aml-runconfig",
    "aml-deployconfig", "aml-online-deployment",
]  # fmt: skip

MAX_BYTES = 4 * 1024 * 1024  # a spec is small; refuse to parse anything huge


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
                raise SpecError(f"keys must be strings, got {k!r}", Position(source, line + 1, col + 1))
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
    raise SpecError(f"unsupported YAML value {node!r}", Position(source, *pos.get(key, (1, 1))))


def _text(value: str, at: tuple[int, int], source: str) -> str:
    """JSON escapes such as "\\ud800\\udc00" reach us as surrogate halves: join or refuse them."""
    if not any("\ud800" <= ch <= "\udfff" for ch in value):
        return value
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError:
        raise SpecError("text holds an unpaired UTF-16 surrogate", Position(source, *at)) from None


def parse_text(text: str, source: str) -> tuple[Any, Positions]:
    """Parse YAML or JSON text into plain data plus positions; errors carry file:line:col."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if len(text) > MAX_BYTES:
        raise SpecError(f"file is larger than {MAX_BYTES} bytes", Position(source))
    try:
        data = _yaml().load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise SpecError(f"invalid YAML: {problem}", Position(source, line, col)) from None
    except (YAMLError, ValueError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"invalid YAML: {first}", Position(source)) from None
    pos: Positions = {}
    return _plain(data, (), pos, source), pos


# An Azure ML v2 online deployment's keys beside its `endpoint_name` (spec/azdeploy.py).
_ONLINE_DEPLOYMENT = {
    "instance_count",
    "instance_type",
    "request_settings",
    "scale_settings",
    "code_configuration",
}
_RUNCONFIG = {"script", "command", "framework", "communicator", "target"}


def detect_format(data: Any) -> Format:
    """Tell the input kinds apart by their keys, never by file name."""
    if not isinstance(data, dict):
        return "layerkit"
    keys = set(data)
    if "$schema" in keys and "environment.schema.json" in str(data["$schema"]):
        return "aml-v2"
    if "entryScript" in keys and not keys & {"conda", "base", "extends", "serve", "features", "apt", "steps"}:
        return "hosted-inference"
    if "computeType" in keys:
        return "aml-deployconfig"
    if str(data.get("$schema", "")).endswith("OnlineDeployment.schema.json") or "endpoint_name" in keys:
        return "aml-online-deployment"
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


class _Out:
    """Builds the layerkit-shaped dict and maps each new key to an old position."""

    def __init__(self, pos: Positions, source: str) -> None:
        self.pos = pos
        self.source = source
        self.new_pos: Positions = {}
        self.data: dict[str, Any] = {}

    def put(self, new: Key, value: Any, old: Key, children: bool = True) -> None:
        node = self.data
        for part in new[:-1]:
            node = node.setdefault(str(part), {})
        node[str(new[-1])] = value
        if children:
            self.copy_positions(new, old)
        elif old in self.pos:
            self.new_pos[new] = self.pos[old]

    def copy_positions(self, new: Key, old: Key) -> None:
        n = len(old)
        for key, p in self.pos.items():
            if key[:n] == old:
                self.new_pos[(*new, *key[n:])] = p
        if old in self.pos:
            self.new_pos[new] = self.pos[old]

    def loc(self, old: Key) -> Position:
        line, col = self.pos.get(old, (1, 1))
        return Position(self.source, line, col)
