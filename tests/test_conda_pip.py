"""Issue 11 §5-6: pip lines and conda channels/specs as pip, conda and conda-lock read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rattler import MatchSpec

from layerkit import api
from layerkit.errors import SpecError
from layerkit.hashing.content import definition
from layerkit.lock.solve import _env_file, lock_inputs
from layerkit.render.renderplan import effective_dependencies, render_plan
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec.load import load_file, load_text
from layerkit.spec.merge import merge_layers, resolve
from layerkit.spec.validate import Checked, check

MAIN, R = M.DEFAULT_CHANNELS


def checked(text: str, name: str = "environment.yml") -> Checked:
    return check(resolve(load_text(text, name)))


def env_yml(deps: str, channels: str | None = "[conda-forge]", pip: str = "") -> str:
    text = "name: proj\n" + (f"channels: {channels}\n" if channels is not None else "")
    text += "dependencies:\n" + "".join(f"  - {d}\n" for d in deps.split(", ") if d)
    if pip:
        text += "  - pip\n  - pip:\n" + "".join(f"    - {p}\n" for p in pip.split(", "))
    return text


# --- one MatchSpec parser -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("python!=3.9", "python"),
        ("python~=3.10", "python"),
        ("python >=3.8,<3.9", "python"),
        ("python=3.11.*=*_cpython", "python"),
        ("conda-forge::numpy>=1.26", "numpy"),
        ("pkgs/main::PyYAML", "pyyaml"),
        ("https://conda.anaconda.org/pytorch::pytorch=2.1", "pytorch"),
        ("numpy[version='>=1.2']", "numpy"),
        ("pip-tools", "pip-tools"),
    ],
)
def test_one_parser_reads_names_as_rattler_does(spec: str, name: str) -> None:
    assert M.name_of(spec) == name


REAL_SPECS = [
    "python!=3.9", "python~=3.10", "python >=3.8,<3.9", "python=3.11.*=*_cpython", "numpy=1.26=py311*",
    "conda-forge::numpy>=1.26", "pkgs/main::PyYAML", "https://conda.anaconda.org/pytorch::pytorch=2.1",
    "numpy[version='>=1.2']", "pytorch::pytorch-cuda=11.8", "nvidia/label/cuda-11.8.0::cuda-toolkit",
    "conda-forge/linux-64::libblas=*=*mkl", "r-base", "_libgcc_mutex", "python_abi=3.11=*_cp311",
    "cudatoolkit 11.8.*", "openssl >=3.0.8,<4.0a0", "pip", "scikit-learn==1.3.0",
]  # fmt: skip


@pytest.mark.parametrize("spec", REAL_SPECS)
def test_the_parser_agrees_with_the_solvers(spec: str) -> None:
    mine, theirs = M.parse(spec), MatchSpec(spec, strict=False)
    assert theirs.name is not None and mine.name == theirs.name.normalized
    assert (mine.version is None) == (theirs.version is None)
    assert (mine.channel is None) == (theirs.channel is None)
    if theirs.channel is not None and not mine.channel_is_url:
        assert theirs.channel.name == mine.channel


@pytest.mark.parametrize("python", ["python!=3.9", "python~=3.10", "python >=3.8,<3.12", "python"])
def test_any_python_spec_stops_injection(python: str) -> None:
    c = checked(env_yml(f"{python}, numpy=1.26"))
    assert c.injected_python is None
    assert not any("python=3.11" in d for d in effective_dependencies(c))
    assert not any("no python" in w for w in c.warnings)


def test_injection_is_warned_and_leaves_the_version_to_the_solver() -> None:
    """Issue 19: on a catalog base an unnamed Python is added unpinned (the solver picks the
    newest the packages allow); a flavour with its own pip wheels keeps its Python."""
    c = checked(env_yml("numpy=1.26"))
    assert c.injected_python == "python"
    assert "python" in effective_dependencies(c)
    assert any("so 'python' is added for base 'cpu-ubuntu22.04'" in w for w in c.warnings)
    onnx = checked(
        "base: {flavour: onnxruntime-cpu}\nconda: {channels: [conda-forge], dependencies: [numpy]}\n",
        "l.yaml",
    )
    assert onnx.injected_python == "python=3.11"
    assert any("base 'onnxruntime-cpu' installs onnxruntime==1.16.3" in w for w in onnx.warnings)


def test_misread_python_no_longer_changes_the_hash() -> None:
    c = checked(env_yml("python~=3.10, numpy=1.26"))
    a = json.loads(definition(c, "linux-64").context["environment.yml"])
    assert a["dependencies"] == ["numpy=1.26", "python~=3.10"]


def test_merge_keys_use_the_parser() -> None:
    base = load_text(
        "conda:\n  channels: [conda-forge]\n  dependencies: ['python >=3.10', numpy]\n", "a.yaml"
    )
    top = load_text("conda:\n  dependencies: ['python~=3.11']\n", "b.yaml")
    deps = merge_layers([base, top]).spec.conda.dependencies  # type: ignore[union-attr]
    assert deps == ("python~=3.11", "numpy")


# --- positions --------------------------------------------------------------------------


def test_conda_dependencies_after_a_pip_block_have_their_own_lines(tmp_path: Path) -> None:
    f = tmp_path / "environment.yml"
    f.write_text(
        "name: x\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - pip\n"
        "  - pip:\n    - requests==2.31.0\n  - numpy=1.26\n  - scipy==1.11\n"
    )
    r = resolve(load_file(f))
    assert r.spec.conda.dependencies == ("python=3.11", "pip", "numpy=1.26", "scipy==1.11")  # type: ignore[union-attr]
    assert str(r.loc(("conda", "dependencies", 2))) == f"{f}:9:5"
    assert str(r.loc(("conda", "dependencies", 3))) == f"{f}:10:5"
    assert str(r.loc(("conda", "pip", 0))) == f"{f}:8:7"


def test_show_annotates_items_after_a_pip_block(tmp_path: Path, cli) -> None:
    f = tmp_path / "environment.yml"
    f.write_text(
        "channels: [conda-forge]\ndependencies:\n  - pip\n  - pip:\n    - rich==13.7.0\n  - numpy=1.26\n"
    )
    out = cli("show", f).out
    line = next(ln for ln in out.splitlines() if "numpy=1.26" in ln)
    assert line.endswith(f"# from {f}:6:5")


# --- channels ---------------------------------------------------------------------------


def test_defaults_means_anacondas_default_channels_not_the_alias() -> None:
    c = checked(env_yml("python=3.11", "[defaults]") + "", "environment.yml")
    assert lock_inputs(c).channels == (MAIN, R)
    mirrored = checked("conda:\n  channels: [defaults, conda-forge]\n  dependencies: [python=3.11]\n"
                       "mirrors:\n  channel_alias: https://conda.mirror.example/c\n", "s.yaml")  # fmt: skip
    assert lock_inputs(mirrored).channels == (MAIN, R, "https://conda.mirror.example/c/conda-forge")


def test_nodefaults_is_not_a_channel() -> None:
    c = checked(env_yml("python=3.11", "[conda-forge, nodefaults]"))
    assert lock_inputs(c).channels == ("conda-forge",)
    assert json.loads(definition(c, "linux-64").context["environment.yml"])["channels"] == ["conda-forge"]


def test_no_channels_means_defaults_with_a_warning() -> None:
    c = checked(env_yml("python=3.11", None))
    assert lock_inputs(c).channels == (MAIN, R)
    assert any("no channels listed, so conda's 'defaults' is used" in w and MAIN in w for w in c.warnings)
    doc = json.loads(dict(render_plan(c).context_files)["environment.yml"])
    assert doc["channels"] == [MAIN, R]


def test_channel_qualified_specs_resolve_to_the_right_host() -> None:
    c = checked(env_yml("python=3.11, pkgs/main::numpy=1.26, conda-forge::scipy", "[defaults, conda-forge]"))
    deps = lock_inputs(c).dependencies
    assert f"{MAIN}::numpy=1.26" in deps
    assert "conda-forge::scipy" in deps  # a plain name: every solver reads it the same way
    doc = json.loads(dict(render_plan(c).context_files)["environment.yml"])
    assert f"{MAIN}::numpy=1.26" in doc["dependencies"]


def test_unlocked_conda_install_does_not_append_condarc_channels() -> None:
    c = checked(env_yml("python=3.11", "[conda-forge]") + "", "environment.yml")
    plan = render_plan(c.__class__(c.resolved, c.image, c.warnings, c.injected_python))
    doc = json.loads(dict(plan.context_files)["environment.yml"])
    assert doc["channels"] == ["conda-forge"]  # the rattler installer: no .condarc at all
    conda = checked(
        "conda:\n  channels: [conda-forge]\n  installer: conda\n  dependencies: [python=3.11]\n", "s.yaml"
    )
    doc = json.loads(dict(render_plan(conda).context_files)["environment.yml"])
    assert doc["channels"] == ["conda-forge", "nodefaults"]


@pytest.mark.parametrize(
    ("spec", "bound"),
    [
        ("defaults::numpy", f"{MAIN}/"),  # conda-lock's rewrite of pkgs/main::numpy
        ("chan::numpy==1.2", "file:///tmp/x/chan/"),  # conda-lock's rewrite of file:///tmp/x/chan::numpy
        ("conda-forge::scipy", "https://conda.mirror.example/c/conda-forge/"),
    ],
)
def test_shim_binds_conda_locks_channel_names_to_the_given_urls(spec: str, bound: str) -> None:
    urls = [MAIN, R, "file:///tmp/x/chan", "https://conda.mirror.example/c/conda-forge"]
    m = MatchSpec(M.bind_channel(spec, urls), strict=False)
    assert m.channel is not None and m.channel.base_url == bound


# --- pip --------------------------------------------------------------------------------

TORCH = (
    "--extra-index-url https://download.pytorch.org/whl/cu118, torch==2.0.1+cu118, torchvision==0.15.2+cu118"
)


def test_pip_options_are_accepted_and_split_from_requirements() -> None:
    c = checked(env_yml("python=3.10", pip=TORCH))
    s = P.section(c.resolved.spec.conda.pip)  # type: ignore[union-attr]
    assert s.requirements == ("torch==2.0.1+cu118", "torchvision==0.15.2+cu118")
    assert s.options.extra_index_urls == ("https://download.pytorch.org/whl/cu118",)
    assert not any("torch" in w or "index" in w for w in c.warnings)


@pytest.mark.parametrize(
    ("line", "canonical"),
    [
        ("-i https://pypi.internal/simple", ("--index-url", "https://pypi.internal/simple")),
        ("--index-url=https://pypi.internal/simple", ("--index-url", "https://pypi.internal/simple")),
        ("-f https://data.pyg.org/whl/torch-2.0.0+cu118.html", ("--find-links", "https://data.pyg.org/whl/torch-2.0.0+cu118.html")),
        ("--pre", ("--pre", None)),
    ],
)  # fmt: skip
def test_option_spellings(line: str, canonical: tuple[str, str | None]) -> None:
    assert P.option(line) == canonical and P.problem(line) is None


def test_pip_options_enter_the_hash_but_the_site_mirror_does_not() -> None:
    plain = api.hash_spec(checked(env_yml("python=3.10", pip="torch==2.0.1"))).hash
    extra = api.hash_spec(checked(env_yml("python=3.10", pip="--extra-index-url https://download.pytorch.org/whl/cu118, torch==2.0.1"))).hash  # fmt: skip
    pre = api.hash_spec(checked(env_yml("python=3.10", pip="--pre, torch==2.0.1"))).hash
    assert len({plain, extra, pre}) == 3
    mirror = "conda:\n  channels: [conda-forge]\n  dependencies: [python=3.10]\n  pip: [torch==2.0.1]\n"
    assert (
        api.hash_spec(checked(mirror, "s.yaml")).hash
        == api.hash_spec(
            checked(mirror + "mirrors:\n  pypi_index: https://pypi.mirror.example/simple\n", "s.yaml")
        ).hash
    )


def test_lock_passes_indexes_to_conda_lock() -> None:
    c = checked(env_yml("python=3.10", pip=TORCH + ", name @ https://example.com/name-1.0-py3-none-any.whl"))
    doc = _env_file(lock_inputs(c))
    assert doc["pip-repositories"] == ["https://download.pytorch.org/whl/cu118"]
    assert "allow-pypi-requests" not in doc  # an extra index: pypi.org is still asked
    assert doc["dependencies"][-1] == {"pip": ["name @ https://example.com/name-1.0-py3-none-any.whl",
                                               "torch==2.0.1+cu118", "torchvision==0.15.2+cu118"]}  # fmt: skip


def test_index_url_replaces_pypi_and_the_site_mirror() -> None:
    text = ("conda:\n  channels: [conda-forge]\n  dependencies: [python=3.10]\n"
            "  pip: ['--index-url https://${PIP_USER}:${PIP_TOKEN}@pypi.corp.example/simple', 'corp-lib==1.2']\n"
            "mirrors:\n  pypi_index: https://pypi.mirror.example/simple\n")  # fmt: skip
    inputs = lock_inputs(checked(text, "s.yaml"))
    assert inputs.pip_repositories == ("https://${PIP_USER}:${PIP_TOKEN}@pypi.corp.example/simple",)
    assert inputs.pypi is False
    assert "s3cret" not in json.dumps(_env_file(inputs))


def test_credentials_come_from_the_environment_and_never_reach_a_dockerfile(monkeypatch) -> None:
    monkeypatch.setenv("PIP_TOKEN", "s3cret")
    text = ("conda:\n  channels: [conda-forge]\n  dependencies: [python=3.10]\n"
            "  pip: ['--extra-index-url https://${PIP_TOKEN}@pypi.corp.example/simple', 'corp-lib==1.2']\n")  # fmt: skip
    c = checked(text, "s.yaml")
    assert "s3cret" not in json.dumps(_env_file(lock_inputs(c))) + lock_inputs(c).spec_hash()
    env = render_plan(c).env_install
    assert env is not None and env.pip_secrets == ("PIP_TOKEN",)  # a secret of the pip RUN


def test_locking_refuses_what_conda_lock_cannot_do() -> None:
    with pytest.raises(SpecError, match="--pre cannot be locked"):
        lock_inputs(checked(env_yml("python=3.10", pip="--pre, torch")))
    with pytest.raises(SpecError, match=r"ends in \.html"):
        lock_inputs(checked(env_yml("python=3.10", pip="-f https://wheels.example/dir/, x==1")))
    ok = lock_inputs(
        checked(env_yml("python=3.10", pip="-f https://data.pyg.org/whl/torch-2.0.0+cu118.html, x==1"))
    )
    assert ok.pip_repositories == ("https://data.pyg.org/whl/torch-2.0.0+cu118.html",)


def test_unlocked_requirements_carry_the_options() -> None:
    c = checked(env_yml("python=3.10", pip=TORCH))
    req = dict(render_plan(c).context_files)["requirements.txt"]
    assert req.splitlines() == [
        "--extra-index-url https://download.pytorch.org/whl/cu118",
        "torch==2.0.1+cu118",
        "torchvision==0.15.2+cu118",
    ]


def test_a_later_layers_index_url_replaces_an_earlier_one() -> None:
    a = load_text("conda:\n  pip: ['--index-url https://a.example/simple', x==1]\n", "a.yaml")
    b = load_text("conda:\n  pip: ['-i https://b.example/simple']\n", "b.yaml")
    pip = merge_layers([a, b]).spec.conda.pip  # type: ignore[union-attr]
    assert P.section(pip).options.index_url == "https://b.example/simple"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("-e git+https://github.com/org/proj.git#egg=proj", "editable installs (-e)"),
        ("/home/me/wheels/proj-1.0-py3-none-any.whl", "a local path"),
        ("proj @ file:///opt/wheels/proj-1.0.tar.gz", "a local path"),
        ("proj @ git+https://github.com/org/proj.git", "without a ref"),  # a tag is fine: issue 19
        (
            "--index-url https://user:pw@pypi.corp.example/simple",
            "credentials must come from environment variables",
        ),
        ("--no-deps", "not supported"),
        ("-r requirements.txt", "list their lines here"),
    ],
)
def test_refusals_say_why(line: str, why: str) -> None:
    problem = P.problem(line)
    assert problem is not None and why in problem and "mirror" not in problem


def test_pinned_vcs_commit_is_accepted() -> None:
    assert (
        P.problem("proj @ git+https://github.com/org/proj.git@0123456789abcdef0123456789abcdef01234567")
        is None
    )
