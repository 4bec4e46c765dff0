"""Injection (issue 15 §3 "messages that spill", §6 "every string field"): a hostile value in
any string of the spec model is either refused (exit 2, one escaped line) or rendered so the
Dockerfile holds exactly the instructions it holds for a benign value.

The fields are discovered by walking layerkit.spec.models.Spec, not listed by hand: a new
string field is fuzzed the day it is added."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import pytest
from cases import Run, assert_one_line_error, injection, layerkit
from pydantic import BaseModel

from layerkit.render.instructions import instruction_name, instructions
from layerkit.spec.models import Base, Spec

KEY, VALUE = "<key>", "<value>"  # a dict's keys and its values, in a field's path
Path_ = tuple[str | int, ...]

MARK = "RUN touch /INJECTED"
HOSTILE = {
    "newline": f"x\n{MARK}",
    "crlf": f"x\r\n{MARK}",
    "backslash-newline": f"x\\\n{MARK}",
    "escape": f"x\x1b[2J\x1b[31m{MARK}\x07",
    "command-substitution": "$(touch /INJECTED)`id`",
    "quotes": f"x\" '\n{MARK} #",
    "line-separator": f"x\u2028{MARK}",
}
# Shapes a string field may need to be valid (a URL, a path, a version, a size...), tried in
# order: a field's benign value is the first that renders, and each hostile value is appended
# to it, so a value is refused for what was appended, not for its shape.
SHAPES = ("x1", "http://mirror.example/x1", "/x1", "12.1", "2g", "ubuntu22.04", "cpu-ubuntu22.04",
          "sha256:" + "a" * 64, "FROM ubuntu:22.04")  # fmt: skip


def string_fields(model: type[BaseModel] = Spec, prefix: Path_ = ()) -> list[Path_]:
    """Every place a string goes in `model`, recursively: fields, tuple items, dict keys
    and values, nested models; the union members of a field each."""
    out: list[Path_] = []
    for name, info in model.model_fields.items():
        out += _strings(info.annotation, (*prefix, name))
    return list(dict.fromkeys(out))


def _strings(tp: Any, path: Path_) -> list[Path_]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _strings(args[0], path)
    if tp is str:
        return [path]
    if origin in (Union, types.UnionType):
        return [p for a in args if a is not type(None) for p in _strings(a, path)]
    if origin is tuple:
        return _strings(args[0], (*path, 0))
    if origin is dict:
        return _strings(args[0], (*path, KEY)) + _strings(args[1], (*path, VALUE))
    if origin is Literal or tp in (bool, int, float):
        return []
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return string_fields(tp, path)
    raise AssertionError(f"{path}: a type the walker does not know: {tp!r}")


FIELDS = string_fields()


def test_walker_finds_the_models_strings() -> None:
    """The discovery works (not the list: it is whatever the model holds)."""
    assert ("apt", 0) in FIELDS and ("steps", 0, "run") in FIELDS and ("steps", 0, "run", 0) in FIELDS
    assert ("env", KEY) in FIELDS and ("env", VALUE) in FIELDS and ("base", "registry", "address") in FIELDS
    assert len(FIELDS) >= 30


def _set(doc: dict[str, Any], path: Path_, value: str) -> None:
    node: Any = doc
    for i, part in enumerate(path):
        last = i == len(path) - 1
        nxt = None if last else path[i + 1]
        if part == KEY:
            node[value] = SHAPES[1]  # a URL: the value a mirror needs, and a fine env value
            return
        if part == VALUE:
            node["K"] = value
            return
        if isinstance(part, int):
            if last:
                node.append(value)
                return
            node.append([] if isinstance(nxt, int) else {})
            node = node[-1]
            continue
        if last:
            node[part] = value
            return
        if node.get(part) is None or not isinstance(node[part], list | dict):
            node[part] = [] if isinstance(nxt, int) else {}
        elif isinstance(nxt, int):
            node[part] = []  # replace the benign list: the hostile item is the only one
        node = node[part]


def document(path: Path_, value: str) -> dict[str, Any]:
    """A spec that renders with every field benign, `path` set to `value`. A base field that
    excludes the others (Base.EXCLUSIVE) replaces the benign base image."""
    doc: dict[str, Any] = {
        "name": "x",
        "base": {"image": "ubuntu:22.04"},
        "conda": {"channels": ["conda-forge"], "dependencies": ["python=3.11"]},
        "steps": [{"run": "true"}],
        "env": {"A": "1"},
    }
    if path[0] == "base" and path[1] in Base.EXCLUSIVE:
        doc["base"] = {}
    if path[0] == "steps":
        doc["steps"] = []
    _set(doc, path, value)
    return doc


def render(cli: Any, folder: Path, doc: dict[str, Any]) -> Run:
    """`layerkit render` in-process (hundreds of cases; the subprocess cases are elsewhere)."""
    spec = folder / "s.json"
    spec.write_text(json.dumps(doc))
    r = cli("render", spec, "--no-lock")
    return Run(r.code, r.out, r.err)


def names(dockerfile: str) -> list[str]:
    return [instruction_name(i.text) for i in instructions(dockerfile)]


def _id(path: Path_) -> str:
    return ".".join(str(p) for p in path)


_benign: dict[Path_, tuple[str, Run]] = {}


def benign(cli: Any, folder: Path, path: Path_) -> tuple[str, Run]:
    if path not in _benign:
        runs = ((v, render(cli, folder, document(path, v))) for v in SHAPES)
        _benign[path] = next(((v, r) for v, r in runs if r.code == 0), (SHAPES[0], Run(2, "", "")))
    return _benign[path]


@injection
@pytest.mark.parametrize("label", list(HOSTILE))
@pytest.mark.parametrize("path", FIELDS, ids=[_id(p) for p in FIELDS])
def test_hostile_string_in_every_field(cli: Any, tmp_path: Path, path: Path_, label: str) -> None:
    value, plain = benign(cli, tmp_path, path)
    run = render(cli, tmp_path, document(path, value + HOSTILE[label]))
    if run.code != 0:
        assert_one_line_error(run, 2)
        return
    if path[:2] == ("base", "dockerfile"):
        return  # the user's own Dockerfile: its instructions are theirs to write
    assert not any(i.text.lstrip().startswith(MARK) for i in instructions(run.out)), run.out
    if plain.code == 0:
        assert names(run.out) == names(plain.out), run.out


@injection
@pytest.mark.parametrize("command", ["validate", "check", "render"])
def test_the_issues_apt_value_stays_on_one_line(tmp_path: Path, command: str) -> None:
    """Issue 15 §3: `apt: ["x\\nRUN touch /INJECTED"]` printed a line beginning with RUN."""
    (tmp_path / "s.yaml").write_text('name: x\napt: ["x\\nRUN touch /INJECTED\\e[31m\\a"]\n')
    run = layerkit(command, "s.yaml", cwd=tmp_path)
    line = assert_one_line_error(run, 2, "s.yaml:2:7")
    assert "x\\nRUN touch /INJECTED\\x1b[31m\\x07" in line, line
    assert not any(ln.startswith("RUN") for ln in run.err.splitlines())


@injection
def test_error_line_escapes_every_control_character() -> None:
    from layerkit.errors import Position, error_line, excerpt

    controls = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, 0xDCFF]))
    line = error_line(Position("s\x1b.yaml", 1, 2), f"value {controls}")
    assert line.isprintable() and line.startswith("s\\x1b.yaml:1:2: error: value \\x00"), line
    assert "\\n" in line and "\\u2028" in line and "\\udcff" in line
    assert error_line(None, "x") == "layerkit: error: x"
    assert excerpt("a" * 100) == repr("a" * 24 + "...") and excerpt("a\nb") == repr("a\\nb")


@injection
@pytest.mark.parametrize("command", ["validate", "render", "check"])
def test_warnings_that_echo_a_value_stay_on_one_line(tmp_path: Path, command: str) -> None:
    """A v1 runconfig's job keys are echoed in a warning: a key holding ESC, BEL and a
    newline is printed escaped."""
    doc = {
        "script": "train.py",
        f"x\x1b[2J\x07\n{MARK}": 1,
        "environment": {
            "python": {"condaDependencies": {"channels": ["conda-forge"], "dependencies": ["python=3.11"]}}
        },
    }
    (tmp_path / "rc.json").write_text(json.dumps(doc))
    run = layerkit(command, "rc.json", cwd=tmp_path)
    assert "Traceback" not in run.err, run.err
    warning = next(ln for ln in run.err.splitlines() if "job settings" in ln)
    assert "x\\x1b[2J\\x07\\nRUN touch /INJECTED" in warning, warning
    assert not any(ln.startswith("RUN") for ln in run.err.splitlines()), run.err
    assert "\x1b" not in run.err and "\x07" not in run.err
