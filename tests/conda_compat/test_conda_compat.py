"""environment.yml files from conda-ecosystem projects, read as conda reads them (issue 19, Tests).

Each directory here holds one environment file from a public conda-ecosystem project's own test
fixtures or docs (conda, conda-lock, mamba/micromamba, pixi, rattler), transcribed as data: its
keys, channels, dependency specs and spacing as in the source, prose comments dropped (conda-lock
`# [selector]` comments kept, they are data), the source (repository @ commit, path) in a header
comment.

conda_outcomes.json records what conda does with each file: the facts computed by running
conda's own environment-file reader (see its `_meta`) from a conda source snapshot outside this
repository. Only the facts are kept: the match specs (name, version, build), channels, pip lines
and variables conda would install, or the reason it refuses the file. No conda code is here.

test_conda_compat asserts that layerkit agrees:
- conda accepts: `validate` and `render` succeed; the rendered environment has the same match
  specs (compared by name, version constraint and build), the same channels as conda resolves
  them (`defaults` -> repo.anaconda.com pkgs/main + pkgs/r, `nodefaults` removed, no channels ->
  defaults, a `channel::` spec's channel added after the listed ones), the same pip lines and
  the same variables. The only extra dependency allowed is the Python layerkit injects when no
  spec names one, and only with its warning.
- conda refuses: layerkit refuses too (exit 2, one line) and `show` exits 2 as well.

Where layerkit disagrees today, the case is an `xfail(strict=True)` naming the issue-19 item
that fixes it, so it turns into a failure (XPASS) when the fix lands: drop the `xfail` then.
A few files conda accepts are refused by layerkit on purpose (`REFUSED_ON_PURPOSE`): the test
holds layerkit to refusing them with its reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from rattler import MatchSpec

HERE = Path(__file__).parent
OUTCOMES: dict = json.loads((HERE / "conda_outcomes.json").read_text(encoding="utf-8"))
META = OUTCOMES.pop("_meta")

# issue 19's items, as the issue names them
SPACES = "issue 19 'Match specs with spaces'"
PY_RANGES = "issue 19 'Python ranges'"
LOCK_KEYS = "issue 19 'conda-lock's own keys in environment.yml' (keys conda ignores: a warning)"
BARE_VCS = "issue 19 'pip lines pip accepts': bare VCS URLs with a pinned ref"
PIP_HASH = "issue 19 'pip lines pip accepts': per-line --hash options"
SPEC_CHANNELS = "issue 19 'Channel-qualified specs whose channel is not in channels:'"
PIP_ADDED = "issue 19 'A pip: section without pip in the dependencies'"
SHOW_EXIT = "issue 19 'layerkit show exits 2 on a file that validate refuses'"
NAMES_FORMAT = "issue 19 'Refusals name the format'"
NO_ITEM = "no issue-19 item covers this"


@dataclass(frozen=True)
class Case:
    today: str = ""  # why layerkit disagrees with conda today (xfail, strict), naming the fix
    refused: str = ""  # conda accepts, layerkit refuses on purpose: text its error must contain
    reason: str = ""  # conda refuses: text layerkit's one-line error must contain
    warns: tuple[str, ...] = ()  # text layerkit's stderr must hold (keys conda ignores)
    conda_lock: tuple[tuple[str, str, str], ...] = ()  # deps where conda-lock's meaning wins


# Files conda accepts that layerkit refuses by design (issue 11 / the merge-spec commit: an image
# must not depend on a source tree outside the build context or on a moving VCS ref).
REFUSED_ON_PURPOSE = {
    "editable": "editable installs (-e)",
    "unpinned-vcs": "a VCS URL without a ref",
}

CASES: dict[str, Case] = {
    # --- conda's own tests/env/support and docs ---
    "conda-add-pip": Case(),
    "conda-advanced-pip": Case(refused=REFUSED_ON_PURPOSE["editable"]),
    "conda-channels-envvars": Case(),
    "conda-dependent": Case(),
    "conda-docs-sphinx": Case(),
    "conda-empty-deps": Case(reason="dependencies"),
    "conda-empty-env": Case(reason="dependencies"),
    "conda-env-with-deps": Case(),
    "conda-example": Case(),
    "conda-host-port": Case(),
    "conda-invalid-keys": Case(reason="unknown key 'names'"),
    "conda-just-vars": Case(),
    "conda-pinned-vars": Case(),
    "conda-pip-argh": Case(),
    "conda-saved-env": Case(),
    "conda-simple": Case(),
    "conda-valid-keys": Case(),
    "conda-with-pip": Case(),
    "conda-with-pip-httpx": Case(),
    "condadocs-from-history": Case(),
    "condadocs-stats": Case(),
    "condadocs-stats2": Case(),
    "condadocs-variables": Case(),
    # --- conda-lock's test inputs ---
    "condalock-allow-pypi": Case(today=f"{LOCK_KEYS}: unknown key 'allow-pypi-requests'"),
    "condalock-bioconda": Case(),
    "condalock-blas-mkl": Case(),
    "condalock-category-main": Case(),
    "condalock-channel-inversion": Case(),
    "condalock-cuda": Case(),
    "condalock-filter-platform": Case(conda_lock=(("python", "<3.11", ""), ("gcc_linux-64", ">=6", ""))),
    "condalock-gdal": Case(),
    "condalock-git": Case(refused=REFUSED_ON_PURPOSE["unpinned-vcs"]),
    "condalock-git-tag": Case(),
    "condalock-local-pip": Case(refused=REFUSED_ON_PURPOSE["editable"]),
    "condalock-lookup": Case(),
    "condalock-move-pip": Case(),
    "condalock-multi-sources": Case(),
    "condalock-os-name-marker": Case(),
    "condalock-pip-deps-platforms": Case(),
    "condalock-pip-extras-defaults": Case(),
    "condalock-pip-hash": Case(today=f"{PIP_HASH}: 'flit-core === 3.9.0 --hash=sha256:1234'"),
    "condalock-pip-repositories": Case(),
    "condalock-pip-selector": Case(),
    "condalock-platform-typo": Case(warns=("platform",)),
    "condalock-source-paths": Case(),
    "condalock-update-ranges": Case(),
    "condalock-v3-dev-category": Case(),
    "condalock-v3-platforms": Case(),
    # --- mamba / micromamba test environments ---
    "mamba-channel-url": Case(),
    "mamba-extra-white-space": Case(),
    "mamba-flow-channels-pip": Case(),
    "mamba-name-with-spaces": Case(
        today=f"{NO_ITEM}: conda takes any string as name ('test env with spaces'); layerkit refuses "
        "it as an image name"
    ),
    "mamba-pypi-no-channels": Case(),
    "mamba-selectors": Case(
        today=f"{NO_ITEM}: conda silently drops the '- sel(linux): pkg' mappings (mamba's selector "
        "syntax) and installs test4 alone; layerkit refuses 'a mapping in dependencies may only "
        "hold pip'"
    ),
    "mamba-xeus-cling": Case(),
    # --- pixi and rattler test data ---
    "pixi-complex": Case(),
    "pixi-simple": Case(),
    "rattler-asymmetric-vqgan": Case(refused=REFUSED_ON_PURPOSE["editable"]),
    "rattler-channel-inversion": Case(),
    "rattler-conda-lock-dev": Case(),
    "rattler-variables": Case(),
}


def _params():
    for name in sorted(OUTCOMES):
        case = CASES[name]
        marks = [pytest.mark.xfail(strict=True, reason=case.today)] if case.today else []
        yield pytest.param(name, marks=marks, id=name)


def _version(text: str) -> str:
    """A version constraint in one spelling: conda writes an exact version bare ('2.0.2') where
    rattler writes '==2.0.2'; '*' is no constraint."""
    text = text.replace(" ", "")
    if text in ("*", "None"):
        return ""
    if text.startswith("==") and not re.search(r"[,|]", text):
        return text[2:]
    return text


def _key(name: str, version: str, build: str) -> tuple[str, str, str]:
    return (name.lower(), _version(version), "" if build in ("", "*", "None") else build)


def _rendered_dep(spec: str) -> tuple[str, str, str]:
    m = MatchSpec(spec)
    assert m.name is not None, spec
    return _key(m.name.normalized, str(m.version or ""), str(m.build or ""))


def _channel(url: str) -> str:
    """https's default port written or not is one channel (rattler drops ':443')."""
    return re.sub(r"^(https://[^/]+):443(?=/|$)", r"\1", url.rstrip("/"))


def _one_line_refusal(r, text: str) -> None:
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    assert ": error: " in lines[0], lines[0]
    assert text in lines[0], lines[0]


@pytest.mark.parametrize("name", list(_params()))
def test_conda_compat(cli, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    for var in ("CONDA_TOKEN", "OTHER_KEY", "PIP_USER", "PIP_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    case, outcome = CASES[name], OUTCOMES[name]
    conda = outcome["conda"]
    path = HERE / outcome["file"]
    checked = cli("validate", path)
    if not conda["accepted"] or case.refused:
        _one_line_refusal(checked, case.reason or case.refused)
        _one_line_refusal(cli("render", "--json", path), case.reason or case.refused)
        assert cli("show", "--json", path).code == 2
        return

    assert checked.code == 0, checked.err
    for key in case.warns:
        assert re.search(rf"warning: .*'{re.escape(key)}'", checked.err), checked.err
    rendered = cli("render", "--json", path)
    assert rendered.code == 0, rendered.err
    files = json.loads(rendered.out)["files"]
    env = json.loads(files["environment.yml"])

    # channels, as conda resolves them
    assert [_channel(c) for c in env["channels"]] == [_channel(c) for c in conda["channels"]]

    # match specs, by name + version constraint + build; a Python layerkit adds must say so
    want = {_key(*d) for d in (case.conda_lock or conda["dependencies"])}
    got = {_rendered_dep(s) for s in env["dependencies"]}
    injected = got - want
    if "no python in the dependencies" in checked.err:
        injected = {d for d in injected if d[0] != "python"}
    assert (sorted(want - got), sorted(injected)) == ([], [])

    # pip lines: every line conda hands to pip, and no requirement conda would not install
    reqs = [ln for ln in files.get("requirements.txt", "").splitlines() if ln and not ln.startswith("#")]
    assert sorted(set(conda["pip"]) - set(reqs)) == []
    assert sorted({r for r in reqs if not r.startswith("-")} - set(conda["pip"])) == []

    # variables: conda sets them on activation; layerkit sets them in the image
    shown = cli("show", "--json", path)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["spec"].get("env", {}) == conda["variables"]
    for k, v in conda["variables"].items():
        assert f'{k}="{v}"' in files["Dockerfile"], (k, v)


def test_every_file_has_a_source_a_conda_outcome_and_a_case() -> None:
    inputs = {str(p.relative_to(HERE)) for p in HERE.glob("*/*") if p.suffix in (".yml", ".yaml")}
    assert inputs == {o["file"] for o in OUTCOMES.values()}
    assert set(CASES) == set(OUTCOMES)
    assert len(inputs) >= 40
    for rel in inputs:
        first, second = (HERE / rel).read_text(encoding="utf-8").splitlines()[:2]
        assert re.fullmatch(r"# Source: github\.com/[\w.-]+/[\w.-]+ @ [0-9a-f]{40}", first), rel
        assert second.startswith("#   "), rel
    for name, case in CASES.items():
        conda = OUTCOMES[name]["conda"]
        # a case conda refuses says what layerkit's refusal must name; only files conda accepts
        # can be refused on purpose
        assert bool(case.reason) == (not conda["accepted"]), name
        assert not (case.refused and not conda["accepted"]), name
        assert OUTCOMES[name]["source"].split(" @ ")[0] in (
            "conda/conda",
            "conda/conda-lock",
            "mamba-org/mamba",
            "prefix-dev/pixi",
            "conda/rattler",
        ), name
