"""Spec text to plain data: YAML or JSON parsed into dicts, lists and scalars with the
file:line:col of every value, and which input format those keys are. Below load.py and the
importers (importers.py, aml.py, ...), which both read these types."""

from __future__ import annotations

import io
import re
from typing import Any, Literal

from layerkit.errors import Position, SpecError, excerpt

Key = tuple[str | int, ...]
Positions = dict[Key, tuple[int, int]]
Format = Literal[
    "layerkit", "environment.yml", "hosted-environment", "hosted-inference", "aml-v2", "aml-runconfig",
    "aml-deployconfig", "aml-online-deployment",
]  # fmt: skip

MAX_BYTES = 256 * 1024  # a spec is kilobytes; ruamel's pure-Python parser is slow on megabytes


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


MAX_VALUES = 10_000  # lines, keys, items and scalars (after alias expansion): a spec has hundreds
MAX_DEPTH = 64  # nesting of mappings and lists


class _Walk:
    """Turns ruamel's round-trip nodes into plain data, recording 1-based positions, within
    MAX_VALUES and MAX_DEPTH: nine levels of `b: &b [*a, *a, ...]` in 342 bytes expand to
    387 million values, so the expansion is counted, not trusted."""

    def __init__(self, pos: Positions, source: str) -> None:
        self.pos = pos
        self.source = source
        self.values = 0
        self.aliased = False
        self.seen: set[int] = set()

    def at(self, key: Key) -> Position:
        return Position(self.source, *self.pos.get(key, (1, 1)))

    def count(self, key: Key, depth: int) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            why = "; YAML aliases (*name) repeat their anchor's content" if self.aliased else ""
            raise SpecError(f"the document expands to more than {MAX_VALUES} values{why}", self.at(key))
        if depth > MAX_DEPTH:
            raise SpecError(f"values are nested more than {MAX_DEPTH} levels deep", self.at(key))

    def plain(self, node: Any, key: Key, depth: int = 0) -> Any:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar, merge_attrib

        self.count(key, depth)
        if isinstance(node, CommentedMap | CommentedSeq):
            if id(node) in self.seen:
                self.aliased = True
            self.seen.add(id(node))
            self._tag(node, key)
        if isinstance(node, CommentedMap):
            if getattr(node, merge_attrib, None):
                line, col = node.lc.line, node.lc.col
                raise SpecError("YAML merge keys (<<) are not supported; write the keys out",
                                Position(self.source, line + 1, col + 1))  # fmt: skip
            out: dict[str, Any] = {}
            for k, v in node.items():
                line, col = node.lc.key(k)
                if not isinstance(k, str):
                    raise SpecError(
                        f"keys must be strings, got {excerpt(k)}", Position(self.source, line + 1, col + 1)
                    )
                if v is not None and not isinstance(v, CommentedMap | CommentedSeq):
                    # A scalar's own position: that is where a bad value is. A key with no value
                    # keeps the key's (ruamel puts the missing value at the next token).
                    vpos = node.lc.value(k)
                    if vpos and vpos[0] is not None:
                        line, col = vpos
                name = _text(k, (line + 1, col + 1), self.source)
                self.pos[(*key, name)] = (line + 1, col + 1)
                out[name] = self.plain(v, (*key, name), depth + 1)
            return out
        if isinstance(node, CommentedSeq):
            items = []
            for i, v in enumerate(node):
                line, col = node.lc.item(i)
                self.pos[(*key, i)] = (line + 1, col + 1)
                items.append(self.plain(v, (*key, i), depth + 1))
            return items
        if isinstance(node, TaggedScalar):
            self._tag(node, key)
            node = node.value  # only !!str reaches here
        if node is None or isinstance(node, bool):
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return _text(str(node), self.pos.get(key, (1, 1)), self.source)
        raise SpecError(f"unsupported YAML value of type {type(node).__name__}", self.at(key))

    def _tag(self, node: Any, key: Key) -> None:
        """Only YAML's plain types: a tag such as !!python/object is refused, never built."""
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag and tag not in _PLAIN_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            lc = getattr(node, "lc", None)  # a collection's own start, past its key
            at = (
                Position(self.source, lc.line + 1, lc.col + 1) if lc and lc.line is not None else self.at(key)
            )
            raise SpecError(f"YAML tag {shown} is not supported; remove it", at)


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "map", "seq")}


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
        raise SpecError(f"file is larger than {MAX_BYTES >> 10} KiB; a spec is small", Position(source, 1, 1))
    _precheck(text, source)
    try:
        data = _yaml().load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise SpecError(f"invalid YAML: {problem}", Position(source, line, col)) from None
    except RecursionError:
        raise SpecError(
            f"values are nested more than {MAX_DEPTH} levels deep", _too_deep(text, source)
        ) from None
    except (YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"invalid YAML: {first}", Position(source)) from None
    pos: Positions = {}
    return _Walk(pos, source).plain(data, ()), pos


# Strings and comments first, so brackets inside them are skipped; then the tokens that can
# start a value: a flow bracket or comma, a block item's dash, a new line.
_TOKENS = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|(?:^|(?<=\s))#[^\n]*|([\[{])|([\]}])|([,\n]|-(?=\s))', re.M
)


def _precheck(text: str, source: str) -> None:
    """Refuse before parsing what ruamel would spend seconds or recursion on: more lines and
    items than MAX_VALUES, or flow brackets nested deeper than MAX_DEPTH. A linear regex scan."""
    depth = values = 0
    for m in _TOKENS.finditer(text):
        opened, closed, other = m.group(1, 2, 3)
        if opened:
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(
                    f"values are nested more than {MAX_DEPTH} levels deep", _offset(text, m.start(), source)
                )
        elif closed:
            depth = max(depth - 1, 0)
        if opened or other:
            values += 1
            if values > MAX_VALUES:
                raise SpecError(f"the spec has more than {MAX_VALUES} lines and items; a spec is small",
                                _offset(text, m.start(), source))  # fmt: skip


def _offset(text: str, offset: int, source: str) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return Position(source, text.count("\n", 0, offset) + 1, offset - line_start + 1)


def _too_deep(text: str, source: str) -> Position:
    """Where nesting passes MAX_DEPTH, from the parser's events (a loop, not a recursion)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = 0
    try:
        for event in YAML(typ="rt").parse(io.StringIO(text)):
            depth += isinstance(event, CollectionStartEvent) - isinstance(event, CollectionEndEvent)
            if depth > MAX_DEPTH:
                mark = event.start_mark
                return Position(source, mark.line + 1, mark.column + 1)
    except YAMLError:
        pass
    return Position(source, 1, 1)


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
