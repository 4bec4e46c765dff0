"""ENV values as the Dockerfile gets them: quoted literals, or search paths that extend the
base image's value."""

from __future__ import annotations

from collections.abc import Mapping

from layerkit.errors import SpecError
from layerkit.spec import values as V

# What PATH means when the base image sets none (Docker's default for a container).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Search-path variables: what layerkit or the catalog adds is put in front of the base
# image's value, never in its place (nvidia/cuda sets PATH and LD_LIBRARY_PATH, Azure
# bases put /opt/miniconda/bin on PATH).
PATH_LISTS = frozenset({"PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "PKG_CONFIG_PATH"})


def quote(value: str) -> str:
    """Double-quote for ENV/LABEL: escape backslash, quote and `$` (Dockerfile expansion)."""
    if problem := V.no_control(value):
        raise SpecError(f"cannot quote value: {problem}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def prepend(name: str, dirs: list[str]) -> str:
    """ENV value putting `dirs` before the base image's `name` (expanded by the Dockerfile
    frontend from the image config), or before Docker's default PATH when the base has none."""
    for d in dirs:
        if not V.matches(V.ABS_PATH, d):
            raise SpecError(f"cannot add {d!r} to {name}: not an absolute path")
    front = ":".join(dirs)
    if name == "PATH":
        return f'"{front}:${{PATH:-{DEFAULT_PATH}}}"'
    return f'"{front}${{{name}:+:${{{name}}}}}"'


def env_values(
    values: Mapping[str, str], fronts: Mapping[str, list[str]], owned: Mapping[str, str] | None = None
) -> dict[str, str]:
    """ENV values: `values` quoted, except search paths (PATH_LISTS), which go with `fronts`
    in front of the base image's value; `owned` (the spec's own env) replaces, quoted."""
    owned = owned or {}
    ahead = {k: list(v) for k, v in fronts.items()}
    out = {}
    for name, value in values.items():
        if name in PATH_LISTS:
            ahead.setdefault(name, []).extend(value.split(":"))
        else:
            out[name] = quote(value)
    out.update({k: prepend(k, dirs) for k, dirs in ahead.items() if k not in owned})
    out.update({k: quote(v) for k, v in owned.items()})
    return out
