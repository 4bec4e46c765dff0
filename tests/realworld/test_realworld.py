"""Environment files nobody on the team wrote (issue 11, "Tests that prove it").

Each directory here holds one public environment file, transcribed as data (keys, channels,
specs, spacing and order as in the source; comments and prose dropped) with its source in a
header comment, or in a SOURCE file beside a JSON input. Every file either validates and
renders, or is refused with exit 2 and one line giving the reason.

`today` records what layerkit does now. Where that is wrong by issue 11's standard (a valid
file refused, a meaning changed, or a refusal whose message does not say why), `want` says
what it should do; flip `today` to it when the fix lands, and delete `want`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Case:
    path: str  # the input, relative to this directory
    source: str  # repository @ commit, path in it
    today: str  # "ok", or "refused: <text the one-line error must contain>"
    at: str = ""  # refused: line:col the error must point at
    want: str = ""  # set only where `today` is wrong by issue 11's standard
    base: str = ""  # ok: the image the Dockerfile starts FROM
    channels: tuple[str, ...] = ()  # ok: the rendered environment's channels, in order
    conda: tuple[str, ...] = ()  # ok: specs the rendered environment must list
    pip: tuple[str, ...] = ()  # ok: lines requirements.txt must hold
    warns: tuple[str, ...] = field(default=())  # ok: text that must be on stderr
    platforms: tuple[str, ...] = ()  # ok: the merged spec's platforms (`show --json`), if set
    pip_options: tuple[str, ...] = ()  # ok: pip option lines the merged spec's conda.pip holds
    # ok to validate and show, but render refuses with this text at `at` (a capability missing)
    render_refused: str = ""
    absent: tuple[str, ...] = ()  # ok: package names the rendered environment must not list
    installs: bool = True  # ok: False for an image used as it is (no environment rendered)


AML_EX = "Azure/azureml-examples"
MLN = "Azure/MachineLearningNotebooks"
LOCK = "conda/conda-lock"
# Issue 19: on a catalog base, python is added unpinned; the lock or the solve picks it.
INJECTED = (
    "no python in the dependencies, so 'python' is added for base 'cpu-ubuntu22.04': the lock or "
    "the solve picks the newest Python the packages allow"
)

CASES = {
    # --- Azure ML v2 environment YAML ($schema: .../environment.schema.json) ---
    "aml-v2-image-plus-conda": Case(
        "aml-v2-image-plus-conda/docker-image-plus-conda.yml",
        f"{AML_EX} @ 35579b49, cli/assets/environment/docker-image-plus-conda.yml (+ conda-yamls/pydata.yml @ 17e8241d)",
        today="ok",  # conda_file is read relative to the YAML, as a layer of its own
        base="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest",
        channels=("conda-forge",),
        conda=("python=3.8", "pip"),
        pip=("numpy==1.21.2", "papermill==2.3.3"),
    ),
    "aml-v2-docker-image": Case(
        "aml-v2-docker-image/docker-image.yml",
        f"{AML_EX} @ 4133e7cf, cli/assets/environment/docker-image.yml",
        # Azure runs an image-only environment as it is: user-managed, nothing installed.
        today="ok",
        base="pytorch/pytorch:latest",
        installs=False,
    ),
    "aml-v2-preview-docker-key": Case(
        "aml-v2-preview-docker-key/python-ml-basic-cpu.yml",
        f"{AML_EX} @ 083b0334, cli/assets/environment/python-ml-basic-cpu.yml (+ conda-envs/ @ 906b29c1)",
        today="refused: this looks like the Azure ML v2 preview environment YAML (docker.image, "
        "conda_file), which the v2 schema replaced and layerkit does not read",
        at="8:13",
    ),
    # --- Azure ML v1: environment JSON, CLI inference config, conda_dependencies.yml ---
    "aml-v1-saved-env": Case(
        "aml-v1-saved-env/azureml_environment.json",
        "kuko6/glioma-segmentation @ faeb17ee, azureml_environment.json (SDK save_to_directory output)",
        today="ok",
        # conda_dependencies.yml beside the JSON is read, as Environment.load_from_directory does
        base="mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20220208.v1",
        channels=("anaconda", "conda-forge"),
        conda=("python=3.8", "pip=20.2.4"),
        pip=("azureml-defaults", "keras~=2.6.0", "azureml-core~=1.39.0"),
    ),
    "aml-v1-saved-env-conda": Case(
        "aml-v1-saved-env/conda_dependencies.yml",
        "kuko6/glioma-segmentation @ 9f4cbda9, conda_dependencies.yml (conda deps after the pip: item)",
        today="ok",
        base="ubuntu:22.04",
        channels=("anaconda", "conda-forge"),
        conda=("python=3.8", "pip=20.2.4"),
        pip=("azureml-defaults", "keras~=2.6.0", "tensorflow-gpu~=2.7.0", "azureml-core~=1.39.0"),
    ),
    "aml-v1-automl-env": Case(
        "aml-v1-automl-env/azureml_environment.json",
        "czofficial/nd00333-capstone @ f254062d, azureml_environment.json",
        # The version Azure ML wrote ('Autosave_2021-04-20T12:00:05Z_955f33e7') is identity only.
        today="ok",
        base="mcr.microsoft.com/azureml/intelmpi2018.3-ubuntu16.04:20210301.v1",
        channels=("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"),
    ),
    "aml-cli-inferenceconfig": Case(
        "aml-cli-inferenceconfig/inferenceconfig.json",
        f"{MLN} @ de9ce83f, how-to-use-azureml/azureml-cli/.azureml/inferenceconfig.json",
        today="ok",  # runtime "python", condaFile read relative to the JSON, entryScript kept
        base="ubuntu:22.04",
        channels=("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"),
        conda=("python=3.6.2",),
        pip=("azureml-defaults", "scikit-learn", "pandas"),
    ),
    "aml-cli-conda-deps-no-channels": Case(
        "aml-cli-conda-deps-no-channels/conda_dependencies.yml",
        f"{MLN} @ de9ce83f, how-to-use-azureml/azureml-cli/.azureml/conda_dependencies.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"),
        conda=("python=3.6.2",),
        pip=("azureml-defaults", "scikit-learn", "pandas"),
        warns=(
            "no channels listed, so conda's 'defaults' is used (https://repo.anaconda.com/pkgs/main "
            "and https://repo.anaconda.com/pkgs/r)",
        ),
    ),
    "aml-automl-env-linux": Case(
        "aml-automl-env-linux/automl_env_linux.yml",
        f"{MLN} @ 0ecbbbce, how-to-use-azureml/automated-machine-learning/automl_env_linux.yml",
        today="refused: 'https://aka.ms/automl-resources/packages/en_core_web_sm-2.1.0.tar.gz': a bare URL "
        "names no package to lock; write 'name @ https://aka.ms/",
        at="30:5",
    ),
    "aml-rapids": Case(
        "aml-rapids/rapids.yml",
        f"{MLN} @ 86c1b3d7, contrib/RAPIDS/rapids.yml",
        # Right: no @ref, so nothing to lock but the default branch of the day (issue 19 accepts
        # a bare VCS URL with a ref, as conda-lock locks the commit it names).
        today="refused: 'git+https://github.com/cupy/cupy.git': a VCS URL without a ref installs "
        "whatever the default branch holds at build time; pin a tag or a commit",
        at="41:8",
    ),
    # --- Azure ML curated environment (azureml-assets) ---
    "aml-assets-lightgbm": Case(
        "aml-assets-lightgbm/conda_dependencies.yaml",
        "Azure/azureml-assets @ 09170d52, assets/training/general/environments/lightgbm-3.3/context/conda_dependencies.yaml",
        # Right: '{{latest-pypi-version}}' is a placeholder Azure's release tooling fills in.
        today="refused: 'azureml-core=={{latest-pypi-version}}' is not a valid pip requirement",
        at="15:5",
    ),
    # --- widely used projects' environment.yml ---
    "sd-environment": Case(
        "sd-environment/environment.yaml",
        "CompVis/stable-diffusion @ 00d2d0e9, environment.yaml",
        today="refused: '-e git+https://github.com/openai/CLIP.git@main#egg=clip': editable installs "
        "(-e) link to a source tree that is not in the image and cannot be locked",
        at="36:7",
    ),
    "gaussian-splatting": Case(
        "gaussian-splatting/environment.yml",
        "graphdeco-inria/gaussian-splatting @ 177653f4, environment.yml",
        today="refused: 'submodules/diff-gaussian-rasterization': a local path is not part of the build "
        "context and cannot be locked or hashed",
        at="19:7",
    ),
    "pandas-dev": Case(
        "pandas-dev/environment.yml",
        "pandas-dev/pandas @ 0005a3b7, environment.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=(
            "python=3.8",
            "cython=0.29.30",
            "numexpr>=2.7.1",
            "aiobotocore<2.0.0",
            "c-compiler",
            "pytorch",
        ),
    ),
    "numpy-dev": Case(
        "numpy-dev/environment.yml",
        "numpy/numpy @ 0452c134, environment.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python=3.9", "breathe!=4.33.0", "compilers", "nomkl", "setuptools=59.2.0"),
    ),
    "mpl-dev": Case(
        "mpl-dev/environment.yml",
        "matplotlib/matplotlib @ 0023ec6c, environment.yml",
        # conda's _parse_spec_str (conda/models/match_spec.py, step 3) strips the bracket section
        # and keeps only key=value items, so conda (and conda-lock, through its vendored conda)
        # installs nbconvert!=6.0.0,...; py-rattler refuses the name 'nbconvert[execute]'.
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("nbconvert!=6.0.0,!=6.0.1,!=7.3.0,!=7.3.1", "python>=3.12", "pip"),
        pip=("mpl-sphinx-theme~=3.11.0",),
        warns=(
            "53:5: warning: 'nbconvert[execute]!=6.0.0,!=6.0.1,!=7.3.0,!=7.3.1': conda ignores [execute]",
        ),
    ),
    "xarray-tests": Case(
        "xarray-tests/environment.yml",
        "pydata/xarray @ 016b0d20, ci/requirements/environment.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python", "numpy>=2.2", "mypy==1.18.1", "pandas-stubs<=2.2.3.241126"),
        pip=("jax", "types-defusedxml", "types-pexpect"),
        warns=(INJECTED,),
    ),
    "xarray-min-deps": Case(
        "xarray-min-deps/min-all-deps.yml",
        "pydata/xarray @ 032d9f30, ci/requirements/min-all-deps.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python=3.8", "numpy=1.19", "netcdf4=1.5.3", "dask-core=2021.04"),
        pip=("numbagg==0.1",),
    ),
    "aml-v2-pydata-conda": Case(
        "aml-v2-image-plus-conda/conda-yamls/pydata.yml",
        f"{AML_EX} @ 17e8241d, cli/assets/environment/conda-yamls/pydata.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python=3.8", "pip"),
        pip=("numpy==1.21.2", "azureml-mlflow==1.34.0", "papermill==2.3.3"),
        warns=("'pip' is unpinned",),
    ),
    "cotainr-rocm-extra-index": Case(
        "cotainr-rocm-extra-index/minimal_pytorch.yml",
        "DeiC-HPC/cotainr @ 40fb1a60, examples/LUMI/conda_pytorch_rocm/minimal_pytorch.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python=3.11.7", "pip=24.0", "numpy=1.26.3"),
        pip=(
            "--extra-index-url https://download.pytorch.org/whl/",
            "pytorch-triton-rocm==2.3.1",
            "torch==2.3.1+rocm6.0",
            "torchaudio==2.3.1+rocm6.0",
            "torchvision==0.18.1+rocm6.0",
        ),
    ),
    # --- conda-lock's own test inputs: its extensions and conda syntax edge cases ---
    "condalock-cuda": Case(
        "condalock-cuda/environment.yaml",
        f"{LOCK} @ ef0185ad, tests/test-cuda/environment.yaml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("cudatoolkit >=11,<12", "cudnn >=8,<9", "python"),
        warns=(INJECTED,),
    ),
    "condalock-nodefaults": Case(
        "condalock-nodefaults/environment.yml",
        f"{LOCK} @ fb7f5805, tests/test-env-nodefaults/environment.yml",
        # python <3.11 admits 3.5-3.10 (rattler's VersionSpec): the solver picks the newest.
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python <3.11",),
    ),
    "condalock-channel-inversion": Case(
        "condalock-channel-inversion/environment.yaml",
        f"{LOCK} @ 1c9d7acf, tests/test-channel-inversion/environment.yaml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge", "https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r"),
        conda=("zlib", "https://repo.anaconda.com/pkgs/main::libgomp", "python"),
        warns=(INJECTED,),
    ),
    "condalock-category": Case(
        "condalock-category/dev.yml",
        f"{LOCK} @ 269d2571, tests/test-multiple-categories/dev.yml",
        # conda-lock's category labels the file's deps; `conda-lock install` installs dev by default.
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("pandas =2.0", "astropy =5.0"),
        platforms=("linux-64",),
    ),
    "condalock-platform-selector": Case(
        "condalock-platform-selector/base-env.yml",
        f"{LOCK} @ 7f5f36ba, tests/test-lock-spec-platforms/base-env.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python =3.7",),
        platforms=("linux-64",),
    ),
    "condalock-pip-url": Case(
        "condalock-pip-url/environment.yml",
        f"{LOCK} @ 50939243, tests/test-pip-full-url/environment.yml",
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("pip",),
        pip=(
            "requests @ https://github.com/psf/requests/releases/download/v2.31.0/requests-2.31.0-py3-none-any.whl",
            "typing-extensions @ https://files.pythonhosted.org/packages/24/21/7d397a4b7934ff4028987914ac1044d3b7d52712f30e2ac7a2ae5bc86dd0/typing_extensions-4.8.0-py3-none-any.whl#sha256=8f92fc8806f9a6b641eaa5318da32b44d401efaac0f6678c9bc448ba3605faa0",
        ),
    ),
    "condalock-pip-repositories": Case(
        "condalock-pip-repositories/environment.yaml",
        f"{LOCK} @ 945347ca, tests/test-pip-repositories/environment.yaml",
        # conda-lock's pip-repositories are pip indexes beside PyPI; its $NAME is pip's ${NAME}.
        today="ok",
        base="ubuntu:22.04",
        channels=("conda-forge",),
        conda=("python=3.11", "requests=2.26"),
        pip=("fake-private-package==1.0.0",),
        pip_options=(
            "--extra-index-url http://${PIP_USER}:${PIP_PASSWORD}@private-pypi.org/api/pypi/simple",
        ),
    ),
}

# Files that are inputs only through another case (a conda file an importer should read).
SECONDARY = {
    "aml-v2-preview-docker-key/conda-envs/python-ml-basic-cpu.yml",
    "aml-cli-inferenceconfig/.azureml/conda_dependencies.yml",
}


def _one_line_refusal(r, path: Path, case: Case) -> None:
    assert r.code == 2, (r.code, r.err)
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err
    assert lines[0].startswith(f"{path}:{case.at}: error: "), lines[0]
    assert case.today.removeprefix("refused: ") in lines[0], lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_realworld(cli, name: str) -> None:
    case = CASES[name]
    path = HERE / case.path
    checked = cli("validate", path)
    rendered = cli("render", "--json", path)
    if case.today.startswith("refused: "):
        _one_line_refusal(checked, path, case)
        _one_line_refusal(rendered, path, case)
        return
    assert case.today == "ok"
    assert checked.code == 0, checked.err
    for text in case.warns:
        assert text in checked.err, checked.err
    shown = cli("show", "--json", path)
    assert shown.code == 0, shown.err
    spec = json.loads(shown.out)["spec"]
    assert tuple(spec.get("platforms", ())) == case.platforms
    pip_lines = spec.get("conda", {}).get("pip", [])
    if case.pip_options:
        assert [line for line in pip_lines if line.startswith("-")] == list(case.pip_options)
    if case.render_refused:
        assert set(case.pip) <= set(pip_lines), pip_lines
        _one_line_refusal(rendered, path, replace(case, today=f"refused: {case.render_refused}"))
        return
    assert rendered.code == 0, rendered.err
    files = json.loads(rendered.out)["files"]
    froms = [line for line in files["Dockerfile"].splitlines() if line.startswith("FROM ")]
    assert froms[0] == f"FROM {case.base} AS base", froms
    if not case.installs:
        assert "environment.yml" not in files and not case.channels
        return
    env = json.loads(files["environment.yml"])
    assert tuple(env["channels"]) == case.channels
    missing = [spec for spec in case.conda if spec not in env["dependencies"]]
    assert not missing, (missing, env["dependencies"])
    names = {re.split(r"[\s<>=!~\[]", d.rsplit("::", 1)[-1])[0] for d in env["dependencies"]}
    assert not names & set(case.absent), env["dependencies"]
    reqs = files.get("requirements.txt", "").splitlines()
    missing = [req for req in case.pip if req not in reqs]
    assert not missing, (missing, reqs)
    if case.pip:
        # Read as written, or (with index credentials) its copy filled in on the RUN's tmpfs.
        assert re.search(r"-r (/run/layerkit-pip/)?requirements\.txt", files["Dockerfile"])


def test_every_input_has_a_case_and_a_source() -> None:
    inputs = {
        str(p.relative_to(HERE))
        for p in HERE.rglob("*")
        if p.is_file() and p.suffix in (".yml", ".yaml", ".json")
    }
    covered = {c.path for c in CASES.values()} | SECONDARY
    assert inputs == covered
    assert len({c.path for c in CASES.values()}) >= 20
    for rel in inputs:
        p = HERE / rel
        if p.suffix == ".json":
            note = (p.parent / "SOURCE").read_text(encoding="utf-8")
            assert "github.com/" in note and " @ " in note, rel
        else:
            first = p.read_text(encoding="utf-8").splitlines()[0]
            assert first.startswith("# Source: github.com/") and " @ " in first, rel
    for name, case in CASES.items():
        # A refusal names where; an accepted file names what must come out of it.
        if case.today.startswith("refused: ") or case.render_refused:
            assert case.at, name
        if not case.today.startswith("refused: "):
            assert case.base and (case.channels or not case.installs), name


def test_position_of_a_conda_dependency_after_the_pip_item(cli) -> None:
    """`pip=20.2.4` follows the `pip:` block on line 20; its recorded position must be line 20,
    not the `pip:` item's own line 8 (issue 11 section 6)."""
    path = HERE / "aml-v1-saved-env" / "conda_dependencies.yml"
    assert path.read_text(encoding="utf-8").splitlines()[19] == "- pip=20.2.4"
    r = cli("show", "--json", path)
    assert r.code == 0, r.err
    where = json.loads(r.out)["provenance"]["conda.dependencies.1"]
    assert where == f"{path}:20:3"
