"""Bad input can't hurt (issue 15 §3): each hostile file gives exit 2, one line, a position
where one exists, and stays under the memory cap (cases.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from unittest import mock

import pytest
from cases import assert_one_line_error, bad_input, layerkit

from layerkit import inputs
from layerkit.errors import SpecError
from layerkit.spec import parse

SPEC = "name: s\nbase:\n  flavour: cpu-ubuntu22.04\nconda:\n  channels: [conda-forge]\n  dependencies: [python=3.11]\n"


def alias_bomb() -> str:
    """The issue's 342 bytes: nine levels of nine aliases, 387 million strings expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_the_bomb_is_the_issues() -> None:
    assert len(alias_bomb()) == 342


@bad_input
@pytest.mark.parametrize("command", ["check", "render", "validate", "hash"])
def test_alias_bomb_is_capped(tmp_path: Path, command: str) -> None:
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    line = assert_one_line_error(layerkit(command, "bomb.yaml", cwd=tmp_path), 2, "bomb.yaml")
    assert f"more than {parse.MAX_VALUES} values" in line and "aliases" in line


@bad_input
@pytest.mark.parametrize("fix", [False, True], ids=["layerkit-check", "layerkit-render"])
def test_alias_bomb_in_the_pre_commit_hook(tmp_path: Path, fix: bool) -> None:
    """The hooks' entries (.pre-commit-hooks.yaml) check every spec git tracks."""
    (tmp_path / "layerkit.yaml").write_text(alias_bomb())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "layerkit.yaml"], cwd=tmp_path, check=True)
    hooks = (Path(__file__).parents[2] / ".pre-commit-hooks.yaml").read_text()
    entry = "layerkit check --fix" if fix else "layerkit check"
    assert f"entry: {entry}\n" in hooks
    line = assert_one_line_error(layerkit(*entry.split()[1:], cwd=tmp_path), 2, "layerkit.yaml")
    assert "aliases" in line


@bad_input
def test_value_cap_holds_without_aliases() -> None:
    text = "a: [" + ",".join(["1"] * (parse.MAX_VALUES + 1)) + "]\n"
    with pytest.raises(SpecError, match=f"more than {parse.MAX_VALUES} lines and items") as exc:
        parse.parse_text(text, "many.yaml")
    assert exc.value.location is not None and exc.value.location.line == 1


@bad_input
@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("x: &x {name: a}\ny:\n  <<: *x\n  b: 1\n", "3:3", "merge keys (<<) are not supported"),
        ("name: x\n<<: {apt: [curl]}\n", "1:1", "merge keys (<<) are not supported"),
        ("name: !!python/object:os.system x\n", "1:7", "tag !!python/object:os.system is not supported"),
        ("name: !!python/name:os.system\n", "1:7", "tag !!python/name:os.system is not supported"),
        ("apt: !!python/object/apply:os.system [x]\n", "1:6", "tag !!python/object/apply:os.system"),
        ("env: !!python/object/new:dict {A: b}\n", "1:6", "tag !!python/object/new:dict"),
        ("name: !custom x\n", "1:7", "tag !custom is not supported"),
    ],
    ids=["merge", "merge-top", "python-object", "python-name", "python-apply", "python-new", "local-tag"],
)
def test_merge_keys_and_tags_are_refused(tmp_path: Path, text: str, where: str, message: str) -> None:
    (tmp_path / "s.yaml").write_text(text)
    line = assert_one_line_error(layerkit("check", "s.yaml", cwd=tmp_path), 2, f"s.yaml:{where}")
    assert message in line


@bad_input
@pytest.mark.parametrize("command", ["render", "validate"])
def test_dockerfile_file_dev_zero(tmp_path: Path, command: str) -> None:
    (tmp_path / "s.yaml").write_text("name: x\nbase:\n  dockerfile_file: /dev/zero\n")
    line = assert_one_line_error(layerkit(command, "s.yaml", cwd=tmp_path), 2, "s.yaml:3:20")
    assert "/dev/zero is not a regular file" in line


@bad_input
@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
@pytest.mark.parametrize("command", ["render", "hash"])
def test_lock_that_is_no_regular_file(tmp_path: Path, special: str, command: str) -> None:
    (tmp_path / "s.yaml").write_text(SPEC)
    if special == "fifo":
        os.mkfifo(tmp_path / "fifo")  # no writer: a blocking open would wait for ever
    elif special == "folder":
        (tmp_path / "folder").mkdir()
    line = assert_one_line_error(layerkit(command, "s.yaml", "--lock", special, cwd=tmp_path), 2, special)
    assert "is not a regular file" in line


@bad_input
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_reader_refuses_special_files_before_reading(tmp_path: Path, kind: str) -> None:
    """The one reader opens with O_NONBLOCK (a FIFO opens at once, writer or not) and fstat
    refuses anything but a regular file before the first read."""
    path = Path("/dev/zero") if kind == "dev-zero" else tmp_path / "fifo"
    if kind == "fifo":
        os.mkfifo(path)
    opened: list[int] = []
    real_open = os.open

    def spy_open(p: object, flags: int, *a: object) -> int:
        opened.append(flags)
        return real_open(p, flags, *a)  # type: ignore[arg-type]

    with (
        mock.patch.object(inputs.os, "open", spy_open),
        mock.patch.object(inputs.os, "read", side_effect=AssertionError("read before the check")),
        pytest.raises(SpecError, match="is not a regular file"),
    ):
        inputs.read_text(path, "lock")
    assert opened and all(f & os.O_NONBLOCK for f in opened)


@bad_input
def test_reader_caps_size(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_bytes(b"#" * 2048)
    with pytest.raises(SpecError, match="larger than 1 KiB"):
        inputs.read_bytes(big, "lock", max_bytes=1024)
    assert inputs.read_bytes(big, "lock", max_bytes=2048) == b"#" * 2048


@bad_input
def test_spec_over_the_size_cap(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("# " + "x" * parse.MAX_BYTES + "\nname: x\n")
    line = assert_one_line_error(layerkit("check", "big.yaml", cwd=tmp_path), 2, "big.yaml")
    assert f"larger than {parse.MAX_BYTES >> 10} KiB" in line


@bad_input
@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        (b"name: x\napt: [a\0]\n", "2:8", "NUL byte"),
        (b"name: x\napt: [caf\xe9]\n", "2:10", "not UTF-8 text (byte 0xe9)"),
        (b"a: " + b"[" * 100 + b"]" * 100 + b"\n", "1:68", "nested more than 64 levels"),
        (b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 400)), None, "nested more than 64 levels"),
    ],
    ids=["nul", "not-utf8", "flow-depth", "block-depth"],
)
def test_positions_of_unreadable_specs(
    tmp_path: Path, content: bytes, where: str | None, message: str
) -> None:
    (tmp_path / "s.yaml").write_bytes(content)
    line = assert_one_line_error(layerkit("validate", "s.yaml", cwd=tmp_path), 2, "s.yaml")
    assert message in line
    if where:
        assert line.startswith(f"s.yaml:{where}: error: "), line
    else:
        assert line.split(": error:")[0].count(":") == 2, line  # s.yaml:LINE:COL


@bad_input
def test_missing_spec_names_the_file(tmp_path: Path) -> None:
    line = assert_one_line_error(layerkit("validate", "nope.yaml", cwd=tmp_path), 2, "nope.yaml")
    assert "no such spec file" in line


@bad_input
@pytest.mark.parametrize("command", ["validate", "check", "render", "hash"])
def test_spec_file_name_that_is_not_utf8(tmp_path: Path, command: str) -> None:
    name = b"bad\xff.yaml"
    with open(os.path.join(os.fsencode(tmp_path), name), "w") as fh:
        fh.write(SPEC)
    run = layerkit(command, name, cwd=tmp_path)
    line = assert_one_line_error(run, 2)
    assert line.startswith("bad\\udcff.yaml: error: the file name is not UTF-8"), line


@bad_input
def test_spec_file_name_not_utf8_with_render_output(tmp_path: Path) -> None:
    name = b"bad\xff.yaml"
    with open(os.path.join(os.fsencode(tmp_path), name), "w") as fh:
        fh.write(SPEC)
    assert_one_line_error(layerkit("render", name, "-o", "ctx", cwd=tmp_path), 2)
    assert not (tmp_path / "ctx").exists()


SHADOW = "root:$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyz:19000:0:99999:7:::\n"


@bad_input
@pytest.mark.parametrize("how", ["extends", "dockerfile_file", "condaDependenciesFile"])
def test_foreign_file_is_quoted_only_as_a_short_excerpt(tmp_path: Path, how: str) -> None:
    foreign = tmp_path / "elsewhere" / "shadow"
    foreign.parent.mkdir()
    foreign.write_text(SHADOW + "daemon:*:19000:0:99999:7:::\n")
    project = tmp_path / "project"
    project.mkdir()
    if how == "extends":
        (project / "s.yaml").write_text(f"name: x\nextends: [{foreign}]\n")
    elif how == "dockerfile_file":
        (project / "s.yaml").write_text(f"name: x\nbase:\n  dockerfile_file: {foreign}\n")
    else:
        (project / "s.yaml").write_text(
            f'{{"name": "x", "python": {{"condaDependenciesFile": "{foreign}"}}}}'
        )
    run = layerkit("render", "s.yaml", cwd=project)
    assert_one_line_error(run, 2)
    assert "0123456789abcdef" not in run.err and "daemon" not in run.err, run.err


@bad_input
def test_dockerfile_from_line_is_quoted_short(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM " + "--x=" + "s3cr3t" * 40 + "\n")
    (tmp_path / "s.yaml").write_text("name: x\nbase:\n  dockerfile_file: Dockerfile\nuser_managed: true\n")
    run = layerkit("render", "s.yaml", cwd=tmp_path)
    assert_one_line_error(run, 2)
    assert run.err.count("s3cr3t") <= 4, run.err


@bad_input
def test_committed_context_file_that_is_a_fifo_is_stale_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SPEC)
    assert layerkit("render", "s.yaml", "-o", "s.context", cwd=tmp_path).code == 0
    (tmp_path / "s.context" / "Dockerfile").unlink()
    os.mkfifo(tmp_path / "s.context" / "Dockerfile")
    run = layerkit("check", "s.yaml", cwd=tmp_path)
    assert run.code == 1 and "Traceback" not in run.err, run.err
    assert "Dockerfile" in run.err


@bad_input
def test_dockerignore_over_the_size_cap(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM ubuntu:22.04\nCOPY a /a\n")  # COPY: the context is read
    (tmp_path / "a").write_text("a\n")
    (tmp_path / ".dockerignore").write_bytes(b"#" * (inputs.MAX_BYTES + 1))
    (tmp_path / "s.yaml").write_text("name: x\nbase:\n  dockerfile_file: Dockerfile\nuser_managed: true\n")
    line = assert_one_line_error(layerkit("render", "s.yaml", cwd=tmp_path), 2, "s.yaml:3:20")
    assert ".dockerignore" in line and "larger than" in line
