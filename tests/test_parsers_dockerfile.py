"""FROM lines and instruction words, read only by render/instructions.py.

The tables keep every form the three former FROM regexes handled (render/userfile.py's
FROM test and last-FROM reader, build/decisions.py's stage tracker) and the word splits of
build/compat.py and userfile's RUN --mount check. Rows marked "was:" are where a copy read a
line otherwise than BuildKit (frontend/dockerfile/instructions parseFrom); BuildKit won.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit.build.decisions import dockerfile_steps
from layerkit.render.instructions import From, instruction_name, read_from, split_name, words

NB = "\u00a0"

FROMS = [
    ("FROM x", From("x", None, None)),
    ("FROM ubuntu:22.04 AS build", From("ubuntu:22.04", "build", None)),
    ("from x as y", From("x", "y", None)),
    ("FROM x AS Base", From("x", "base", None)),  # was: buildplan kept "Base"; BuildKit lower-cases
    ("FROM --platform=$BUILDPLATFORM x AS b", From("x", "b", "$BUILDPLATFORM")),
    ("FROM --platform=linux/amd64 x", From("x", None, "linux/amd64")),
    ("FROM\tx\tAS\tb", From("x", "b", None)),  # was: buildplan split on " " only and lost the stage
    ("FROM x AS a.b-c_d", From("x", "a.b-c_d", None)),
    (f"FROM x{NB}AS{NB}y", From(f"x{NB}AS{NB}y", None, None)),  # was: userfile's \s split at U+00A0
    ("FROM x AS", None),
    ("FROM x y", None),
    ("FROM x AS y z", None),
    ("FROM", None),
    ("FROM --pull x", None),
    ("FROM --platform x", None),  # a flag's value follows `=`
    ("FROM --platform=x", None),  # was: userfile read `--platform=x` as the image
    ("FROM --platform=a --platform=b x", None),
    ("FROM x --platform=y", None),
    ("FROM x AS 1st", None),  # was: accepted; BuildKit refuses the stage name
    ("FROM x AS a/b", None),
    ("FROMx", None),
    ("RUN FROM x", None),
    ("ONBUILD FROM x", None),
]


@pytest.mark.parametrize(("text", "want"), FROMS)
def test_read_from(text: str, want: From | None) -> None:
    assert read_from(text) == want
    if want is not None:
        assert instruction_name(text) == "from"


@pytest.mark.parametrize(
    ("text", "name", "rest"),
    [
        ("RUN a  b", "RUN", "a  b"),
        ("run\ta", "run", "a"),
        ("ONBUILD RUN x", "ONBUILD", "RUN x"),
        ("EXPOSE", "EXPOSE", ""),
        (f"ENV{NB}A{NB}1", f"ENV{NB}A{NB}1", ""),  # U+00A0 joins: an unknown instruction to BuildKit
        ("", "", ""),
    ],
)
def test_instruction_name_and_rest(text: str, name: str, rest: str) -> None:
    assert split_name(text) == (name, rest)
    assert instruction_name(text) == name.lower()


def test_words_split_on_ascii_white_space_only() -> None:
    assert words(f" COPY\t--link\x0b a{NB}b  /d ") == ["COPY", "--link", f"a{NB}b", "/d"]
    assert words("") == []


def test_plan_steps_track_stages_as_buildkit_names_them() -> None:
    text = "FROM img:1 AS Base\nrun\ta\nFROM\tbase\tAS\trt\nCOPY --from=base /x /x\nFROM other\nRUN b\n"
    steps = [(s.stage, s.instruction, s.text) for s in dockerfile_steps(text)]
    assert steps == [
        ("base", "FROM", "img:1 AS Base"),
        ("base", "RUN", "a"),
        ("rt", "FROM", "base\tAS\trt"),
        ("rt", "COPY", "--from=base /x /x"),
        ("other", "FROM", "other"),
        ("other", "RUN", "b"),
    ]


@pytest.mark.parametrize(
    ("dockerfile", "words_in_error"),
    [
        (
            "FROM ubuntu:22.04 AS build\nFROM --pull ubuntu:22.04\n",
            "cannot read the base Dockerfile's last FROM line",
        ),
        ("FROM x\nFROM --platform=linux/amd64\n", "cannot read the base Dockerfile's last FROM line"),
        ("FROM x AS 9lives\n", "cannot read the base Dockerfile's last FROM line"),
        ("FROM x AS Env\n", "stage name 'env' is used by layerkit"),
        ("RUN true\n", "has no FROM instruction"),
        # was: only an upper-case `RUN` was checked, and not under ONBUILD (which runs in layerkit's base stage)
        ("FROM x\nrun --mount=type=secret,id=t cat /run/secrets/t\n", "may not mount build secrets"),
        ("FROM x\nONBUILD RUN --mount=type=secret,id=t true\n", "may not mount build secrets"),
        ("FROM x\nRun --mount=type=bind,target=/s true\n", "without from="),
    ],
)
def test_base_dockerfile_from_and_run_checks(
    cli, tmp_path: Path, dockerfile: str, words_in_error: str
) -> None:
    (tmp_path / "base.Dockerfile").write_text(dockerfile)
    spec = tmp_path / "env.yaml"
    spec.write_text("base:\n  dockerfile_file: base.Dockerfile\nuser_managed: true\n")
    r = cli("render", spec)
    assert r.code == 2 and r.out == "", r.err
    assert words_in_error in r.err


@pytest.mark.parametrize(
    ("dockerfile", "from_line"),
    [
        ("FROM debian:12\n", "FROM debian:12 AS user-base\nFROM user-base AS base"),
        ("FROM debian:12 as Mine\n", "FROM debian:12 as Mine\nFROM mine AS base"),
        ("FROM --platform=linux/amd64 debian:12\n", "FROM --platform=linux/amd64 debian:12 AS user-base\n"),
    ],
)
def test_base_dockerfile_last_stage_is_aliased(cli, tmp_path: Path, dockerfile: str, from_line: str) -> None:
    (tmp_path / "base.Dockerfile").write_text(dockerfile)
    spec = tmp_path / "env.yaml"
    spec.write_text("base:\n  dockerfile_file: base.Dockerfile\nuser_managed: true\n")
    r = cli("render", spec)
    assert r.code == 0, r.err
    assert from_line in r.out
