"""Environment variables in channel URLs (`https://host/t/${CONDA_TOKEN}/stable`).

conda expands them in an environment file's `channels:` only (conda/env/env.py
`_expand_channels`: `os.path.expandvars` on each entry, so `$NAME` and `${NAME}`; an unset
variable stays as written), never in a dependency's `channel::`. conda-lock keeps them
unexpanded in its lock (models/channel.py: the channel's URL as written, package URLs with
the expanded prefix put back as written) and expands them only for the solver.

layerkit does the same: the URL as written is what is validated, hashed, locked and
rendered; the value is read from the environment only by `lock` (for conda-lock) and
`build` (a BuildKit secret per variable, read by install_env.py in the install RUN).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from layerkit.errors import Position, SpecError

# posixpath.expandvars' `\$(\w+|\{[^}]*\})`, with names narrowed to what an environment
# variable (and a BuildKit secret id in a Dockerfile) can be.
VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_DOLLAR = re.compile(r"\$")


def names(url: str) -> tuple[str, ...]:
    """The variables a channel URL uses, in order of first use."""
    return tuple(dict.fromkeys(a or b for a, b in VAR.findall(url)))


def problem(url: str, url_pattern: re.Pattern[str]) -> str | None:
    """Why a channel entry with `$` is refused, or None when its variables are fine."""
    if "$" not in url:
        return None
    if "://" not in url:
        return (
            f"'{url}': environment variables are expanded in channel URLs only (https://host/t/${{TOKEN}}/…)"
        )
    plain = VAR.sub("x", url)
    if _DOLLAR.search(plain):
        return f"'{url}': write environment variables as ${{NAME}} or $NAME (letters, digits, _)"
    rest = plain.partition("://")[2]
    if "@" in rest.split("/", 1)[0]:
        return (
            f"'{url}': credentials in a channel URL's user info are not supported; "
            "use a token path (https://host/t/${TOKEN}/channel)"
        )
    if not url_pattern.fullmatch(plain):
        return f"'{url}' is not a channel"
    return None


def channel_names(channels: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for c in channels for n in names(c)))


def values(
    wanted: Iterable[str],
    where: Position | None,
    what: str,
    env: Mapping[str, str] | None = None,
    uses: str = "a channel URL",
) -> dict[str, str]:
    """Each variable's value from the environment; a missing or empty one is an error."""
    env = os.environ if env is None else env
    out: dict[str, str] = {}
    for name in wanted:
        value = env.get(name, "")
        if not value:
            raise SpecError(
                f"{uses} uses ${{{name}}}, which is not set: export {name} before `layerkit {what}`",
                where,
            )
        if "\n" in value or "\r" in value:
            raise SpecError(f"${{{name}}} (used in {uses}) must be a single line", where)
        out[name] = value
    return out


def mask(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with each secret value written as its `${NAME}` (longest values first)."""
    for name, value in sorted(secrets.items(), key=lambda kv: -len(kv[1])):
        if value:
            text = text.replace(value, f"${{{name}}}")
    return text
