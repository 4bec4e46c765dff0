"""conda-lock's platform selectors in an environment.yml: `- pywin32  # [win]`.

conda reads `# [win]` as a YAML comment and installs the line everywhere; conda-lock
(src_parser/selectors.py, filter_platform_selectors) drops each line whose selector does not
name the target platform, before it parses the YAML. Its rules, followed here:
- the selector is the text between the last `[...]` of a trailing comment, compared whole
  with a fixed set per platform (`linux64`, `unix`, `linux` for linux-64, ...): an
  expression such as `not win` matches no platform and drops the line everywhere;
- lines starting with `#` are comments, not selectors.
An image installs one dependency list on every platform it is built for, so a line kept on
some of the spec's platforms and dropped on others is refused; one dropped on all is dropped
with a warning, as conda-lock drops it.
"""

from __future__ import annotations

import re
from typing import Any

from layerkit.errors import Position, SpecError
from layerkit.spec.models import Platform
from layerkit.spec.parse import Key, Positions

# conda_lock/src_parser/selectors.py platform_sel (conda-lock 4.0), for the platforms
# layerkit builds.
PLATFORM_SELECTORS: dict[Platform, frozenset[str]] = {
    "linux-64": frozenset({"linux64", "unix", "linux"}),
    "linux-aarch64": frozenset({"aarch64", "unix", "linux"}),
    "linux-ppc64le": frozenset({"ppc64le", "unix", "linux"}),
}
# conda-lock's pattern, adapted by conda-lock from conda-build.
_SEL = re.compile(r"(.+?)\s*(#.*)\[([^\[\]]+)\](?(2)[^\(\)]*)$")


def _items(data: dict[str, Any]) -> list[Key]:
    deps = data.get("dependencies")
    keys: list[Key] = []
    if not isinstance(deps, list):
        return keys
    for i, item in enumerate(deps):
        if isinstance(item, str):
            keys.append(("dependencies", i))
        elif isinstance(item, dict) and isinstance(item.get("pip"), list):
            keys += [("dependencies", i, "pip", j) for j in range(len(item["pip"]))]
    return keys


def dropped(
    text: str, data: dict[str, Any], pos: Positions, source: str, warnings: list[str]
) -> frozenset[Key]:
    """Keys of the dependency items (conda specs, pip lines) conda-lock's selectors leave out."""
    plats = [p for p in data.get("platforms") or () if p in PLATFORM_SELECTORS] or ["linux-64"]
    lines = text.splitlines()
    drop: set[Key] = set()
    for key in _items(data):
        line_no, col = pos.get(key, (0, 0))
        if not 0 < line_no <= len(lines):
            continue
        line = lines[line_no - 1]
        m = _SEL.match(line)
        if line.lstrip().startswith("#") or m is None:
            continue
        cond = m.group(3)
        keep = [p for p in plats if cond in PLATFORM_SELECTORS[p]]
        where = Position(source, line_no, col)
        if len(keep) == len(plats):
            continue
        if keep:
            off = [p for p in plats if p not in keep]
            raise SpecError(
                f"the platform selector [{cond}] keeps this line on {', '.join(keep)} but not on "
                f"{', '.join(off)} (conda-lock's reading); an image installs one dependency list on "
                "every platform, so build those platforms from separate files",
                where,
            )
        drop.add(key)
        warnings.append(
            f"{where}: warning: left out: conda-lock's platform selector [{cond}] does not select "
            f"{', '.join(plats)} (conda itself would read it as a comment and install the line)"
        )
    return frozenset(drop)
