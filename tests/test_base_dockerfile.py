"""Base Dockerfiles checked as BuildKit parses them (issue 11, section 7).

The rules are BuildKit's (moby/buildkit frontend/dockerfile/parser/parser.go and
shell/lex.go; see layerkit/render/instructions.py). The inputs are written here, minimal,
each shaped after a real case in the official Azure ML base image Dockerfiles
(github.com/Azure/AzureML-Containers, base/*/Dockerfile, removed from the repository's head
in 2026 but in its history):
- base/cpu/openmpi3.1.2-ubuntu18.04, base/cpu/openmpi4.1.0-ubuntu20.04 and
  base/gpu/openmpi4.1.0-cuda11.{1,2,3,6}-...: apt package lists whose lines end
  `name<U+00A0>\\<U+00A0>...`, so the `\\` does not continue the line;
- base/cpu/openmpi4.1.0-ubuntu22.04 and base/gpu/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:
  `ENV<U+00A0>CONDA_PACKAGE<U+00A0>23.5.0`, an unknown instruction to BuildKit (CRLF lines);
- base/gpu/openmpi3.1.2-cuda10.1-cudnn7-ubuntu18.04 (2019): the file's last line ends `\\`.
None of them has a heredoc or a here-string; those cases are written from BuildKit's rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit.render.instructions import parse
from layerkit.render.userfile import context_sources

NB = "\u00a0"

AZURE_APT_LIST = (
    "FROM ubuntu:20.04\r\n"
    "RUN apt-get update && \\\r\n"
    "    apt-get install -y \\\r\n"
    f"    libkrb5-26-heimdal{NB}\\{NB}{NB}{NB}\r\n"
    f"    libksba8{NB}\\\r\n"
    "    && rm -rf /var/lib/apt/lists/*\r\n"
)
AZURE_ENV = f"FROM ubuntu:22.04\r\nENV PATH /opt/miniconda/bin:$PATH\r\nENV{NB}CONDA_PACKAGE{NB}23.5.0\r\n"
AZURE_EOF_CONTINUATION = "FROM ubuntu:18.04\nRUN mkdir -p /3p_src/git && \\\n    cd /3p_src/git && \\\n    wget -q https://example.org/git.tgz \\\n"

REFUSED = [
    # (Dockerfile, line, col, words of the message)
    (AZURE_APT_LIST, 4, 23, "no-break space (U+00A0)"),
    (AZURE_ENV, 3, 4, "no-break space (U+00A0)"),
    (AZURE_EOF_CONTINUATION, 4, 0, "ends inside a line continuation"),
    ("FROM x\nRUN true \\\n# a comment\n\n", 2, 0, "ends inside a line continuation"),
    ("FROM x\nRUN <<EOF\nset -e\n  EOF\n", 2, 0, "unterminated heredoc <<EOF"),  # indented: not the end
    ("FROM x\nCOPY <<'CFG' /etc/app.cfg\nk=v\n", 2, 0, "unterminated heredoc <<'CFG'"),
    ("FROM x\nRUN cat <<<EOF > /etc/motd\nCOPY motd /etc/motd\n", 2, 0, "here-string"),
    (
        'FROM x\nSHELL ["/bin/bash", "-c"]\nFROM y\nRUN read a <<< "$X"\n',
        4,
        0,
        "here-string",
    ),  # new stage: sh
]


@pytest.mark.parametrize(("text", "line", "col", "words"), REFUSED)
def test_buildkit_would_read_it_otherwise(text: str, line: int, col: int, words: str) -> None:
    problem = parse(text).problems[0]
    assert (problem.line, problem.col) == (line, col)
    assert words in problem.message


ACCEPTED = [
    "FROM x\nRUN <<EOF\necho hi\nEOF\nCOPY <<-'CFG' /etc/c\n\tk=v\n\tCFG\n",  # <<- strips tabs
    "FROM x\nRUN <<A <<B\na\nA\nb\nB\n",
    'FROM x\nRUN ["sh", "-c", "cat <<EOF"]\n',  # JSON form: no heredoc
    "FROM x\nRUN echo '<<EOF'\n",  # quoted: no heredoc
    'FROM x\nSHELL ["/bin/bash", "-c"]\nRUN read a b <<< "1 2"\n',  # bash has here-strings
    f"FROM x\n# a comment with a{NB}no-break space\nRUN true\n",
    "FROM x\nRUN echo \\\\\n",  # an escaped backslash continues nothing
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_what_buildkit_reads_as_meant_passes(text: str) -> None:
    assert parse(text).problems == ()


def test_instructions_end_where_buildkit_ends_them() -> None:
    # A no-break space after `\` ends the RUN: the next line is an instruction of its own.
    texts = [i.text for i in parse(AZURE_APT_LIST).instructions]
    assert texts[1].endswith(f"libkrb5-26-heimdal{NB}\\") and texts[2].startswith("libksba8")
    # `<<<` is no heredoc and `cat<<EOF` is one word: nothing after them is skipped as a body.
    bash = 'FROM x\nSHELL ["/bin/bash", "-c"]\nRUN cat <<<EOF\nCOPY a /a\nEOF\n'
    assert context_sources(bash) == [(4, "a")]
    assert context_sources("FROM x\nRUN cat<<EOF\nCOPY b /b\nEOF\n") == [(3, "b")]


@pytest.mark.parametrize(("text", "line", "col", "words"), REFUSED[:4])
def test_validate_and_render_refuse_with_the_dockerfile_line(
    cli, tmp_path: Path, text: str, line: int, col: int, words: str
) -> None:
    dockerfile = tmp_path / "base.Dockerfile"
    dockerfile.write_bytes(text.encode())
    spec = tmp_path / "env.yaml"
    spec.write_text("base:\n  dockerfile_file: base.Dockerfile\nconda: {dependencies: [python=3.11]}\n")
    for command in ("validate", "render"):
        r = cli(command, spec)
        assert r.code == 2 and r.out == "", r.err
        lines = r.err.strip().splitlines()
        where = f"{dockerfile}:{line}:{col}" if col else f"{dockerfile}:{line}"
        assert len(lines) == 1 and lines[0].startswith(f"{where}: error: "), r.err
        assert words in lines[0]


def test_a_final_continuation_no_longer_swallows_layerkits_from_line(cli, tmp_path: Path) -> None:
    spec = tmp_path / "env.yaml"
    spec.write_text("base:\n  dockerfile: |\n    FROM debian:12\n    RUN true \\\nuser_managed: true\n")
    r = cli("render", spec)
    assert r.code == 2 and "line 2 of base.dockerfile: the file ends inside a line continuation" in r.err
    spec.write_text("base:\n  dockerfile: |\n    FROM debian:12\n    RUN true\nuser_managed: true\n")
    r = cli("render", spec)
    assert r.code == 0 and "RUN true\nFROM user-base AS base" in r.out
