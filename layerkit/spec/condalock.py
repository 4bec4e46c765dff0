"""conda-lock's own keys in an environment.yml, read with conda-lock's meaning.

conda ignores them (conda/env/env.py: VALID_KEYS is name, dependencies, prefix, channels,
variables; `validate_keys` drops any other key with an "EnvironmentSectionNotValid ... will
be ignored" message). conda-lock reads them in src_parser/environment_yaml.py (4.0):

- `platforms`: the subdirs to lock; an empty or missing list means conda-lock's defaults.
  Here: layerkit's `platforms`, keeping the Linux platforms an image can be built for.
- `category`: `env_yaml_data.get("category") or "main"` labels every dependency of the file.
  `conda-lock lock` locks every category; `conda-lock install` and `render` take `main`,
  `dev` too by default (`--dev`, DEFAULT_INSTALL_OPT_DEV = True), any other only when named
  with `--extras`. layerkit installs every layer it is given; see `_category`.
- `pip-repositories`: pip indexes, asked before PyPI (pypi_solver._prepare_repositories_pool),
  with `$NAME`/`${NAME}` expanded from the environment (posixpath.expandvars). Here: pip's
  `--extra-index-url` lines, which layerkit locks as conda-lock pip-repositories again.
- `allow-pypi-requests` (default true): false leaves PyPI out of that pool. Here: the first
  repository becomes `--index-url`, which replaces PyPI for pip as for the lock.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any, get_args

from layerkit.errors import SpecError
from layerkit.spec import pip as P
from layerkit.spec.models import Platform
from layerkit.spec.parse import Key

if TYPE_CHECKING:
    from layerkit.spec.parse import _Out

KEYS = ("platforms", "category", "allow-pypi-requests", "pip-repositories")
BUILDABLE: tuple[str, ...] = get_args(Platform)
# conda subdirs are <os>-<arch> (conda/base/constants.py KNOWN_SUBDIRS); a typo is no platform.
_SUBDIR = re.compile(r"(?:linux|osx|win|zos|emscripten|wasi|freebsd)-[a-z0-9_]+")
# posixpath.expandvars: `$name` or `${name}`; pip's requirements files expand `${NAME}` only.
_VAR = re.compile(r"\$(?:\{([^}]*)\}|(\w+))")
_USERINFO = re.compile(r"(?<=//)[^/@]*@")


def import_keys(data: dict[str, Any], out: _Out, warnings: list[str]) -> None:
    """Map the conda-lock keys of an environment.yml onto layerkit's spec in `out`."""
    if "platforms" in data:
        _platforms(data["platforms"], out, warnings)
    if "category" in data:
        _category(data["category"], out, warnings)
    if "pip-repositories" in data or "allow-pypi-requests" in data:
        _pip_repositories(data, out)


def _warn(out: _Out, key: Key, text: str) -> str:
    return f"{out.loc(key)}: warning: {text}"


def _platforms(value: Any, out: _Out, warnings: list[str]) -> None:
    if value is None or value == []:
        return  # conda-lock: no platforms in the file means its defaults; layerkit's is linux-64
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise SpecError(
            "'platforms' must be a list of conda platforms such as linux-64", out.loc(("platforms",))
        )
    keep: list[str] = []
    for i, plat in enumerate(value):
        if plat in BUILDABLE:
            if plat not in keep:
                out.new_pos[("platforms", len(keep))] = out.pos.get(("platforms", i), (1, 1))
                keep.append(plat)
        elif _SUBDIR.fullmatch(plat):
            warnings.append(_warn(out, ("platforms", i), (
                f"platform '{plat}' is left out: conda-lock locks it, but layerkit builds Linux "
                f"images for {', '.join(BUILDABLE)} only"
            )))  # fmt: skip
        else:
            hint = difflib.get_close_matches(plat, BUILDABLE, n=1)
            tip = f"did you mean '{hint[0]}'?" if hint else f"use one of {', '.join(BUILDABLE)}"
            raise SpecError(f"'{plat}' is not a conda platform; {tip}", out.loc(("platforms", i)))
    if not keep:
        raise SpecError(
            f"none of the platforms {', '.join(value)} is one layerkit builds images for; "
            f"add one of {', '.join(BUILDABLE)}",
            out.loc(("platforms",)),
        )
    out.put(("platforms",), keep, ("platforms",), children=False)


def _category(value: Any, out: _Out, warnings: list[str]) -> None:
    if not value or value == "main":
        return  # conda-lock: `category or "main"`
    if not isinstance(value, str):
        raise SpecError("'category' must be a name such as main or dev", out.loc(("category",)))
    if value == "dev":
        return  # conda-lock install and render include dev by default: so does the image
    warnings.append(_warn(out, ("category",), (
        f"category '{value}': `conda-lock install` installs these dependencies only with "
        f"`--extras {value}`; layerkit installs every layer it is given, so they are in the image"
    )))  # fmt: skip


def _shown(url: str) -> str:
    """The URL as an error may print it: user info other than variables is masked."""
    m = _USERINFO.search(url)
    if m and _VAR.sub("", m.group(0)).strip(":@"):
        return _USERINFO.sub("***@", url, count=1)
    return url


def _braced(url: str, out: _Out, key: Key) -> str:
    """conda-lock's `$NAME` as pip's `${NAME}`; names pip cannot expand are refused."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if not re.fullmatch(r"[A-Z0-9_]+", name):
            raise SpecError(
                f"pip-repositories item {_shown(url)}: pip expands only upper-case variable names "
                f"(${{NAME}}), so ${name} would reach the index unexpanded; rename the variable",
                out.loc(key),
            )
        return f"${{{name}}}"

    return _VAR.sub(one, url)


def _pip_repositories(data: dict[str, Any], out: _Out) -> None:
    repos = data.get("pip-repositories")
    if repos is None:
        repos = []
    if not isinstance(repos, list) or not all(isinstance(r, str) for r in repos):
        raise SpecError("'pip-repositories' must be a list of index URLs", out.loc(("pip-repositories",)))
    allow = data.get("allow-pypi-requests", True)
    if not isinstance(allow, bool):
        raise SpecError("'allow-pypi-requests' must be true or false", out.loc(("allow-pypi-requests",)))
    conda = out.data.setdefault("conda", {})
    pip = conda.get("pip")
    pip = list(pip) if isinstance(pip, list) else []
    opts = [P.option(line) for line in pip if isinstance(line, str)]
    has_index = any(o is not None and o[0] == "--index-url" for o in opts)
    added: list[tuple[str, Key]] = []
    for i, url in enumerate(repos):
        key: Key = ("pip-repositories", i)
        first = not allow and not has_index and i == 0
        line = f"{'--index-url' if first else '--extra-index-url'} {_braced(url, out, key)}"
        why = P.problem(line)
        if why is not None:
            reason = why.split("': ", 1)[-1]
            raise SpecError(f"pip-repositories item {_shown(url)} (read as pip's {line.split()[0]}): {reason}",
                            out.loc(key))  # fmt: skip
        added.append((line, key))
    if not allow and not repos and not has_index:
        needs = [line for line, o in zip(pip, opts, strict=True) if o is None and "@" not in str(line)]
        if needs:
            raise SpecError(
                f"allow-pypi-requests: false with no pip-repositories leaves pip no index to find "
                f"'{needs[0]}'; list its index under pip-repositories",
                out.loc(("allow-pypi-requests",)),
            )
    if not added:
        return
    for line, key in added:
        out.new_pos[("conda", "pip", len(pip))] = out.pos.get(key, (1, 1))
        pip.append(line)
    out.new_pos.setdefault(("conda", "pip"), out.pos.get(("pip-repositories",), (1, 1)))
    conda["pip"] = pip
