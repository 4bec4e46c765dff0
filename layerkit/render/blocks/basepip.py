"""The base-Python block: a pip-only environment on the base image's own Python.

`user_managed: true` with a `conda.pip` section (and no conda dependencies): the base brings
the interpreter (Azure ML's inference bases, a python:3.x image, a distro python3 with venv),
so nothing of conda runs. The final stage makes a venv at /opt/env with that interpreter and
pip installs the requirements into it; /opt/env/bin goes first on PATH, as for a conda env.
A venv rather than the base's site-packages: Debian's and Ubuntu's Pythons refuse pip
installs there (PEP 668), and the base's own packages stay as they were.
It is unlocked (conda-lock needs a conda Python to resolve pip packages): pins with `==` are
what keeps it reproducible, and validate warns about every unpinned line.
"""

from __future__ import annotations

import shlex

from layerkit.errors import SpecError
from layerkit.render.blocks.dockerfile import Block, Comment, Copy, run
from layerkit.spec import pip as P
from layerkit.spec import values as V
from layerkit.spec.validate import Checked

PREFIX = "/opt/env"
REQUIREMENTS = "base-requirements.txt"  # context file
WORK = "/tmp/layerkit-pip"
DEFAULT_PYTHON = "python3"


def base_python(checked: Checked) -> str:
    """The interpreter the venv is made with: runtime.python, else the base's python3."""
    rt = checked.resolved.spec.runtime
    python = rt.python if rt and rt.python else DEFAULT_PYTHON
    if python != DEFAULT_PYTHON and not V.matches(V.ABS_PATH, python):
        raise SpecError(
            "runtime.python: must be an absolute path", checked.resolved.loc(("runtime", "python"))
        )
    return python


def requirements(checked: Checked) -> P.PipSection | None:
    """The pip section installed on the base's Python, or None when there is none."""
    spec = checked.resolved.spec
    if not spec.user_managed or not spec.conda or not spec.conda.pip:
        return None
    section = P.section(spec.conda.pip)
    if section.options.env_names():
        raise SpecError(
            "pip index credentials (${NAME}) are not supported on the base's Python yet; use a conda "
            "environment (user_managed: false) for a private index",
            checked.resolved.loc(("conda", "pip")),
        )
    return section if section.requirements else None


def context_file(section: P.PipSection) -> tuple[str, str]:
    lines = [*section.options.lines(), *sorted(section.requirements)]
    return REQUIREMENTS, "\n".join(lines) + "\n"


def base_pip(checked: Checked, section: P.PipSection | None, pypi_index: str | None) -> Block:
    if section is None:
        return Block()
    python = base_python(checked)
    index = f" --index-url {shlex.quote(pypi_index)}" if pypi_index and not section.options.index_url else ""
    return Block(
        final=(
            Comment("--- pip packages on the base's own Python, in a venv (render/blocks/basepip.py) ---"),
            Copy((REQUIREMENTS,), f"{WORK}/"),
            run(
                f"{python} -m venv {PREFIX}",
                f"{PREFIX}/bin/python -m pip install --no-cache-dir --disable-pip-version-check{index} "
                f"-r {WORK}/{REQUIREMENTS}",
                f"find {PREFIX} -name __pycache__ -type d -prune -exec rm -rf {{}} +",
                f"rm -rf {WORK}",
            ),
        )
    )
