"""Issue 19: environment.yml read as conda and conda-lock read it. Each test cites the conda or
conda-lock code whose behaviour it holds layerkit to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conda_lock._vendor.conda.models.match_spec import MatchSpec as CondaMatchSpec
from conda_lock.src_parser.pyproject_toml import parse_requirement_specifier
from rattler import MatchSpec

from layerkit import api
from layerkit.errors import SpecError
from layerkit.lock.solve import _env_file, lock_inputs
from layerkit.render.renderplan import effective_dependencies
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked


def checked(text: str, name: str = "environment.yml") -> Checked:
    return api.check_spec(resolve(load_text(text, name)))


def env_yml(*deps: str, channels: str = "[conda-forge]", pip: tuple[str, ...] = ()) -> str:
    text = f"name: proj\nchannels: {channels}\ndependencies:\n"
    text += "".join(f"  - {json.dumps(d)}\n" for d in deps)
    if pip:
        text += "  - pip:\n" + "".join(f"    - {json.dumps(p)}\n" for p in pip)
    return text


def refusal(text: str, name: str = "environment.yml") -> str:
    with pytest.raises(SpecError) as info:
        checked(text, name)
    return str(info.value)


def rendered_env(c: Checked) -> dict[str, list[str]]:
    files = api.render(c, auto_lock=False).files
    return json.loads(files["environment.yml"])  # type: ignore[no-any-return]


# --- 1. match specs, as conda's and the solver's parsers read them ------------------------

SPACED = ["python >= 3.8, < 3.9", "python > 3.11", "numpy >=1.0 , < 2.0 py311_0", "openssl >=3.0.8,<4.0a0"]


@pytest.mark.parametrize("spec", SPACED)
def test_spaced_specs_read_as_conda_and_rattler_read_them(spec: str) -> None:
    """conda's _parse_version_plus_build (conda/models/match_spec.py) drops the spaces of the
    version and splits off the build; rattler's MatchSpec reads the same version."""
    mine, conda, rattler = M.parse(spec), CondaMatchSpec(spec), MatchSpec(spec, strict=False)
    assert mine.name == conda.name == rattler.name.normalized  # type: ignore[union-attr]
    assert mine.version == str(conda.version).replace(" ", "") == rattler.version
    assert checked(env_yml(spec)).resolved.spec.conda.dependencies == (spec,)  # type: ignore[union-attr]


def test_the_solver_grammar_refuses_with_its_own_reason() -> None:
    assert "'numpy>=>1' is not a valid conda package spec: unable to parse version spec: >=>1" in refusal(
        env_yml("numpy>=>1")
    )


def test_a_bracket_key_without_a_value_is_dropped_as_conda_drops_it() -> None:
    """conda's _parse_spec_str step 3 keeps only key=value items of the brackets: the spec means
    nbconvert!=6.0.0 (conda-lock's vendored conda agrees); rattler refuses the name as written."""
    spec = "nbconvert[execute]!=6.0.0,!=6.0.1"
    conda = CondaMatchSpec(spec)
    assert (conda.name, str(conda.version)) == ("nbconvert", "!=6.0.0,!=6.0.1")
    c = checked(env_yml(spec))
    assert "nbconvert!=6.0.0,!=6.0.1" in effective_dependencies(c)
    assert any("conda ignores [execute]" in w for w in c.warnings)
    kept = M.parse("foo[execute, version='>1']")
    assert (kept.version, kept.ignored, kept.solver) == (">1", ("execute",), "foo[version='>1']")


def test_lock_check_and_check_load_no_solver(tmp_path: Path) -> None:
    """The pure reader serves `lock --check` and `check`; the solver's grammar is imported only
    where a full validation runs (spec/grammar.py)."""
    spec = tmp_path / "environment.yml"
    spec.write_text(env_yml("python >= 3.8, < 3.9"))
    probe = (
        "import sys\nfrom pathlib import Path\nfrom layerkit import api\n"
        f"api.check_spec(Path({str(spec)!r}), solver_grammar=False)\nprint('rattler' in sys.modules)\n"
        f"api.check_spec(Path({str(spec)!r}))\nprint('rattler' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


# --- 2. Python ranges --------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["python <3.11", "python=3", "python>=3.4", "python 3.*", "python>=4"])
def test_a_python_range_with_a_supported_python_is_accepted(spec: str) -> None:
    checked(env_yml(spec))  # python>=4 admits no known Python: the solver's to refuse


@pytest.mark.parametrize(
    ("spec", "admits"),
    [("python<3.5", "2.0-2.7, 3.0-3.4"), ("python=2.7", "2.7"), ("python >=3.3, <3.5", "3.3-3.4")],
)
def test_a_python_range_with_no_supported_python_says_what_it_admits(spec: str, admits: str) -> None:
    assert f"'{spec}' admits only Python {admits}; layerkit needs Python >= 3.5" in refusal(env_yml(spec))


# --- 3. pip lines ------------------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA = "a" * 64


def test_a_bare_vcs_url_with_a_ref_is_kept_and_named_as_conda_lock_names_it() -> None:
    """conda_lock/src_parser/pyproject_toml.py parse_requirement_specifier names a bare VCS
    URL by its repository; Poetry locks the commit the ref names (pypi_solver.py)."""
    line = "git+https://github.com/conda/conda-lock.git@v2.4.1"
    assert parse_requirement_specifier(line).name == P.vcs_name(line) == "conda-lock"
    c = checked(env_yml("python=3.11", "pip", pip=(line,)))
    assert line in lock_inputs(c).pip
    assert any(f"'{line}' is unpinned" in w for w in c.warnings)  # a tag moves until locked
    assert P.is_pinned(f"git+https://github.com/x/y.git@{COMMIT}")
    assert "without a ref" in refusal(env_yml("python=3.11", "pip", pip=("git+https://github.com/x/y.git",)))


def test_a_per_line_hash_is_kept_as_conda_lock_reads_it() -> None:
    """conda-lock's RequirementWithHash splits one ' --hash=' off the line, and its
    _compute_hash (pypi_solver.py) records that hash over the index's, so the locked install's
    --require-hashes checks it; unlocked, pip checks the line itself."""
    line = f"requests==2.32.3   --hash=sha256:{SHA}"
    c = checked(env_yml("python=3.11", "pip", pip=(line,)))
    want = f"requests==2.32.3 --hash=sha256:{SHA}"
    assert lock_inputs(c).pip == (want,)
    assert parse_requirement_specifier(want).hash == f"sha256:{SHA}"
    assert want in api.render(c, auto_lock=False).files["requirements.txt"].splitlines()


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (f"requests>=2 --hash=sha256:{SHA}", "pinned with '=='"),
        (f"requests==2 --hash=sha256:{SHA} --hash=sha256:{SHA}", "conda-lock reads one --hash per line"),
        ("requests==2 --hash=md5:0123", "'sha256:' and 64 hex digits"),
    ],
)
def test_hashes_pip_or_conda_lock_cannot_check_are_refused(line: str, why: str) -> None:
    assert why in refusal(env_yml("python=3.11", "pip", pip=(line,)))


def test_an_unlocked_file_with_some_hashes_is_refused_before_pip_fails() -> None:
    c = checked(env_yml("python=3.11", "pip", pip=(f"a==1 --hash=sha256:{SHA}", "b==2")))
    with pytest.raises(SpecError, match="pip checks hashes for all of a file's requirements or none"):
        api.render(c, auto_lock=False)


# --- 4. channels only a qualified spec names -----------------------------------------------


def test_a_channel_only_a_spec_names_comes_after_the_listed_ones() -> None:
    """conda/core/solve.py Solver._prepare appends each spec channel not in self.channels."""
    c = checked(
        env_yml("python=3.11", "pytorch::pytorch", "https://host:443::flask=1.0.2", "conda-forge::numpy")
    )
    assert rendered_env(c)["channels"] == ["conda-forge", "pytorch", "https://host:443"]
    assert lock_inputs(c).channels == ("conda-forge", "pytorch", "https://host:443")
    assert sum("which channels: does not list" in w for w in c.warnings) == 2


def test_a_listed_channel_in_another_spelling_is_not_added_again() -> None:
    c = checked(
        env_yml(
            "https://conda.anaconda.org/pytorch::pytorch", "pkgs/main::zlib", channels="[pytorch, defaults]"
        )
    )
    assert lock_inputs(c).channels == ("pytorch", *M.DEFAULT_CHANNELS)


# --- 5. pip without pip ------------------------------------------------------------------


def test_a_pip_section_without_pip_adds_pip_as_conda_does() -> None:
    """conda/env/env.py validate_keys inserts 'pip' when a pip section has no pip dependency."""
    c = checked(env_yml("python=3.11", pip=("requests==2.32.3",)))
    assert "pip" in effective_dependencies(c)
    assert any("conda adds 'pip', and so does layerkit" in w for w in c.warnings)
    deps = _env_file(lock_inputs(c))["dependencies"]
    assert deps.count("pip") == 1 and deps[-1] == {"pip": ["requests==2.32.3"]}
    assert "pip" in rendered_env(c)["dependencies"]


# --- 6. the injected Python ----------------------------------------------------------------


@pytest.mark.parametrize(
    "base", ["base: {image: 'registry.example/ml/base:1'}", 'base: {dockerfile: "FROM ubuntu:22.04"}']
)
def test_the_users_base_brings_its_python(base: str) -> None:
    c = checked(f"{base}\nconda: {{channels: [conda-forge], dependencies: [numpy=1.26]}}\n", "l.yaml")
    assert c.injected_python is None
    assert not any(M.name_of(d) == "python" for d in effective_dependencies(c))
    assert not any("no python in the dependencies" in w for w in c.warnings)


def test_a_catalog_base_gets_python_unpinned() -> None:
    c = checked(env_yml("numpy=1.26"))
    assert [d for d in effective_dependencies(c) if M.name_of(d) == "python"] == ["python"]
