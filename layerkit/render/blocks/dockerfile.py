"""Typed Dockerfile instructions, as the template prints them (templates/Dockerfile.j2).

Every string in them is a constant of layerkit's, validated (spec/values.py, the catalog's
patterns) or already quoted for its position (render/envvars.py quote): printing adds nothing
but the keyword, flags and line continuations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass(frozen=True, slots=True)
class Comment:
    kind: ClassVar[str] = "comment"
    text: str


@dataclass(frozen=True, slots=True)
class Raw:
    """The user's base Dockerfile, inlined verbatim (checked by render/userfile.py)."""

    kind: ClassVar[str] = "raw"
    text: str


@dataclass(frozen=True, slots=True)
class From:
    kind: ClassVar[str] = "from"
    ref: str
    alias: str
    # `$BUILDPLATFORM` for the env stage: it runs on the builder's own platform and installs
    # the target's packages (cross-install), so no emulation for it.
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class Arg:
    """ARG NAME=value: a build-time variable of this stage's RUNs, not in the image's config."""

    kind: ClassVar[str] = "arg"
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Workdir:
    kind: ClassVar[str] = "workdir"
    path: str


@dataclass(frozen=True, slots=True)
class User:
    kind: ClassVar[str] = "user"
    uid: int


@dataclass(frozen=True, slots=True)
class Shell:
    kind: ClassVar[str] = "shell"
    argv: tuple[str, ...]

    @property
    def exec_form(self) -> str:
        return json.dumps(list(self.argv))


@dataclass(frozen=True, slots=True)
class Env:
    """ENV NAME=value pairs, values already quoted; on one line, or one pair a line."""

    kind: ClassVar[str] = "env"
    pairs: tuple[tuple[str, str], ...]
    one_line: bool = False


@dataclass(frozen=True, slots=True)
class Label:
    kind: ClassVar[str] = "label"
    pairs: tuple[tuple[str, str], ...]  # values quoted


@dataclass(frozen=True, slots=True)
class Copy:
    """A COPY of layerkit's: context files, or a path of stage ``from_stage``, to ``dest``."""

    kind: ClassVar[str] = "copy"
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None = None
    # --link: the layer is made on its own and laid over the layers below, so it survives a
    # change there (the same blob, not re-copied). A linked copy writes dest's parent folders
    # itself (root, 0755) and cannot follow a symlink among them: so only into /opt.
    link: bool = False
    chmod: str | None = None  # e.g. "0755": the copied files' mode (a script sent as text)


@dataclass(frozen=True, slots=True)
class Entrypoint:
    kind: ClassVar[str] = "entrypoint"
    argv: tuple[str, ...]

    @property
    def exec_form(self) -> str:
        return json.dumps(list(self.argv))


@dataclass(frozen=True, slots=True)
class Expose:
    kind: ClassVar[str] = "expose"
    port: int


@dataclass(frozen=True, slots=True)
class Mount:
    """A RUN --mount: ``type`` and its options in order, e.g. (("id", "X"), ("target", "/t"))."""

    type: Literal["cache", "secret", "tmpfs"]
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a RUN's `&&` chain; ``items`` (apt packages) follow it one a line."""

    text: str
    items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Run:
    """RUN [--mount…] cmd1 && cmd2 …, one command a line."""

    kind: ClassVar[str] = "run"
    commands: tuple[Command, ...]
    mounts: tuple[Mount, ...] = ()

    def then(self, *more: str) -> Run:
        return Run(self.commands + tuple(Command(c) for c in more), self.mounts)


def run(*commands: str, mounts: tuple[Mount, ...] = ()) -> Run:
    return Run(tuple(Command(c) for c in commands), mounts)


@dataclass(frozen=True, slots=True)
class Script:
    """RUN of a shell script whose lines keep their own indentation (an if/fi)."""

    kind: ClassVar[str] = "script"
    lines: tuple[str, ...]


Instruction = (
    Comment
    | Raw
    | From
    | Arg
    | Workdir
    | User
    | Shell
    | Env
    | Label
    | Copy
    | Run
    | Script
    | Entrypoint
    | Expose
)


@dataclass(frozen=True, slots=True)
class Stage:
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True, slots=True)
class Block:
    """What one building block adds, by where it goes (assemble.py orders the blocks).

    base: the base stage, after its FROM; runtime: a runtime image of its own (the catalog's
    runtime ref), in place of what base gave it; env: the env stage; final: the runtime stage,
    after its system setup; closing: after the labels. apt: packages every image that runs the
    environment needs; build_apt: packages only the base stage needs (to build MPI).
    """

    base: tuple[Instruction, ...] = ()
    runtime: tuple[Instruction, ...] = ()
    env: tuple[Instruction, ...] = ()
    final: tuple[Instruction, ...] = ()
    closing: tuple[Instruction, ...] = ()
    apt: tuple[str, ...] = ()
    build_apt: tuple[str, ...] = ()
