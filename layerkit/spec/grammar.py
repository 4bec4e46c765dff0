"""Conda specs held to the solver's own MatchSpec parser (py-rattler), not a grammar of ours.

spec/matchspec.py reads names, versions and channels without loading a solver; this module
checks the same specs with `rattler.MatchSpec(spec, strict=False)`, as the embedded solver
(lock/shim.py) and the env stage (templates/install_env.py) parse them, and reads Python
ranges with rattler's VersionSpec. Importing rattler costs about 50 ms, so it runs where a
full validation runs (validate, render, hash, lock, build) and not on paths whose fresh lock
already proves that these exact specs went through it (`lock --check`, `check`).
"""

from __future__ import annotations

from itertools import groupby

from layerkit.errors import Position, SpecError
from layerkit.spec import matchspec as M
from layerkit.spec.merge import Resolved

MIN_PYTHON = (3, 5)
# Python series a spec is tried against: every CPython minor so far, and some to come.
KNOWN_PYTHONS = [(2, m) for m in range(8)] + [(3, m) for m in range(31)]


def check(r: Resolved) -> None:
    """Raise SpecError at the first conda dependency the solver cannot read, or whose
    name the solver reads otherwise than layerkit, or that admits no supported Python."""
    conda = r.spec.conda
    deps = (conda.dependencies or ()) if conda else ()
    if not deps:
        return
    from rattler import MatchSpec
    from rattler.exceptions import InvalidMatchSpecError

    for i, dep in enumerate(deps):
        where = r.loc(("conda", "dependencies", i))
        key = f"conda.dependencies.{i}"
        mine = M.parse(dep)
        try:
            theirs = MatchSpec(mine.solver, strict=False)
        except InvalidMatchSpecError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SpecError(f"{key}: '{dep}' is not a valid conda package spec: {reason}", where) from None
        name = theirs.name.normalized if theirs.name is not None else None
        if name != mine.name:
            raise SpecError(
                f"'{dep}': the solver reads the package name as {name!r}, not {mine.name!r}", where
            )
        if name == "python" and theirs.version:
            _check_python(f"{key}: '{dep}'", theirs.version, where)


def admitted(version_spec: str) -> list[tuple[int, int]]:
    """The Python series (major, minor) of KNOWN_PYTHONS that a conda version spec admits."""
    from rattler import Version, VersionSpec

    spec = VersionSpec(version_spec)
    patches = range(41)
    return [
        (a, b)
        for a, b in KNOWN_PYTHONS
        if any(spec.matches(Version(v)) for v in (f"{a}.{b}", *(f"{a}.{b}.{p}" for p in patches)))
    ]


def _check_python(dep: str, version_spec: str, where: Position) -> None:
    series = admitted(version_spec)
    # A spec no known Python meets (python>=4) is the solver's to refuse, with its reasons.
    if not series or any(s >= MIN_PYTHON for s in series):
        return
    floor = ".".join(map(str, MIN_PYTHON))
    raise SpecError(
        f"{dep} admits only Python {spans(series)}; layerkit needs Python >= {floor}: "
        f"allow a newer one (e.g. 'python >={floor}')",
        where,
    )


def spans(series: list[tuple[int, int]]) -> str:
    """[(2, 7), (3, 0), (3, 1), (3, 2)] -> '2.7, 3.0-3.2'."""
    out = []
    for _, run in groupby(enumerate(series), key=lambda x: (x[1][0], x[1][1] - x[0])):
        items = [s for _, s in run]
        first, last = items[0], items[-1]
        out.append(f"{first[0]}.{first[1]}" + (f"-{last[0]}.{last[1]}" if last != first else ""))
    return ", ".join(out)
