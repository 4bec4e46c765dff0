"""Issue 19: conda-lock's own environment.yml keys (platforms, category, pip-repositories,
allow-pypi-requests) and platform selectors read with conda-lock's meaning; keys conda
ignores warn; refusals name the format a file looks like; `show` refuses what `validate` does.

The inputs are shaped like conda-lock's own test files (tests/test-multiple-categories,
tests/test-pip-repositories, tests/test-lock-spec-platforms) and conda's environment files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layerkit.errors import SpecError
from layerkit.lock.solve import _env_file, lock_inputs
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

BAD = Path(__file__).parent / "bad"


def checked(text: str, name: str = "environment.yml") -> Checked:
    return check(resolve(load_text(text, name)))


def refusal(text: str) -> str:
    with pytest.raises(SpecError) as exc:
        checked(text)
    return str(exc.value)


BASE = "channels:\n  - conda-forge\n"
DEPS = "dependencies:\n  - python=3.11\n  - requests=2.26\n"
PIP = "  - pip\n  - pip:\n    - fake-private-package==1.0.0\n"


# --- platforms ------------------------------------------------------------------------


def test_platforms_become_the_specs_platforms_linux_only_with_warnings() -> None:
    text = BASE + "platforms:\n  - linux-64\n  - osx-arm64\n  - win-64\n  - linux-aarch64\n" + DEPS
    c = checked(text)
    assert c.resolved.spec.platforms == ("linux-64", "linux-aarch64")
    assert str(c.resolved.loc(("platforms", 1))) == "environment.yml:7:5"
    warned = [w for w in c.warnings if "is left out" in w]
    assert warned == [
        "environment.yml:5:5: warning: platform 'osx-arm64' is left out: conda-lock locks it, but layerkit "
        "builds Linux images for linux-64, linux-aarch64, linux-ppc64le only",
        "environment.yml:6:5: warning: platform 'win-64' is left out: conda-lock locks it, but layerkit "
        "builds Linux images for linux-64, linux-aarch64, linux-ppc64le only",
    ]
    assert lock_inputs(c).platforms == ("linux-64", "linux-aarch64")


def test_empty_platforms_are_unset_as_in_conda_lock() -> None:
    assert checked(BASE + "platforms: []\n" + DEPS).resolved.spec.platforms is None


@pytest.mark.parametrize(
    ("platforms", "message"),
    [
        ("[linux64]", "3:13: 'linux64' is not a conda platform; did you mean 'linux-64'?"),
        ("[osx-arm64, win-64]", "3:1: none of the platforms osx-arm64, win-64 is one layerkit builds"),
        ("linux-64", "3:12: 'platforms' must be a list of conda platforms"),
    ],
)
def test_platforms_refused_saying_why(platforms: str, message: str) -> None:
    assert message in refusal(BASE + f"platforms: {platforms}\n" + DEPS)


# --- category -------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["main", "dev", "''"])
def test_main_and_dev_install_as_conda_lock_install_does_by_default(category: str) -> None:
    c = checked(f"category: {category}\n" + BASE + DEPS)
    assert c.resolved.spec.conda is not None
    assert c.resolved.spec.conda.dependencies == ("python=3.11", "requests=2.26")
    assert not [w for w in c.warnings if "category" in w]


def test_another_category_is_installed_with_a_warning() -> None:
    c = checked("category: docs\n" + BASE + DEPS)
    assert c.resolved.spec.conda is not None
    assert c.resolved.spec.conda.dependencies == ("python=3.11", "requests=2.26")
    assert (
        "environment.yml:1:11: warning: category 'docs': `conda-lock install` installs these dependencies "
        "only with `--extras docs`; layerkit installs every layer it is given, so they are in the image"
    ) in c.warnings


def test_category_must_be_a_name() -> None:
    assert "1:1: 'category' must be a name such as main or dev" in refusal("category: [dev]\n" + DEPS)


# --- pip-repositories and allow-pypi-requests -----------------------------------------


def test_pip_repositories_are_extra_indexes_with_variables_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE + "pip-repositories:\n  - http://$PIP_USER:${PIP_PASSWORD}@private-pypi.org/api/pypi/simple\n"
    c = checked(text + DEPS + PIP)
    assert c.resolved.spec.conda is not None
    url = "http://${PIP_USER}:${PIP_PASSWORD}@private-pypi.org/api/pypi/simple"
    assert c.resolved.spec.conda.pip == ("fake-private-package==1.0.0", f"--extra-index-url {url}")
    assert str(c.resolved.loc(("conda", "pip", 1))) == "environment.yml:4:5"
    inputs = lock_inputs(c)
    assert (inputs.pip_repositories, inputs.pypi) == ((url,), True)
    doc = _env_file(inputs)
    assert doc["pip-repositories"] == [url] and "allow-pypi-requests" not in doc
    # The values stay in the environment: never in the lock's inputs or their hash.
    monkeypatch.setenv("PIP_USER", "someone")
    monkeypatch.setenv("PIP_PASSWORD", "hunter2-secret")
    again = lock_inputs(checked(text + DEPS + PIP))
    assert again.spec_hash() == inputs.spec_hash()
    assert "hunter2" not in json.dumps(_env_file(again))


def test_no_pypi_makes_the_first_repository_the_index() -> None:
    text = (
        BASE + "allow-pypi-requests: false\npip-repositories:\n"
        "  - https://${TOKEN}@a.example/simple\n  - https://b.example/simple\n" + DEPS + PIP
    )
    c = checked(text)
    assert c.resolved.spec.conda is not None
    assert c.resolved.spec.conda.pip == (
        "fake-private-package==1.0.0",
        "--index-url https://${TOKEN}@a.example/simple",
        "--extra-index-url https://b.example/simple",
    )
    inputs = lock_inputs(c)
    assert inputs.pip_repositories == ("https://${TOKEN}@a.example/simple", "https://b.example/simple")
    assert inputs.pypi is False
    assert _env_file(inputs)["allow-pypi-requests"] is False


def test_no_pypi_beside_an_index_url_keeps_the_users_index() -> None:
    deps = DEPS + "  - pip\n  - pip:\n    - --index-url https://mirror.example/simple\n    - x==1\n"
    c = checked(BASE + "allow-pypi-requests: false\npip-repositories: [https://b.example/simple]\n" + deps)
    assert c.resolved.spec.conda is not None
    assert "--extra-index-url https://b.example/simple" in c.resolved.spec.conda.pip
    assert lock_inputs(c).pypi is False


def test_no_pypi_and_no_repository_leaves_nothing_to_find_packages() -> None:
    msg = refusal(BASE + "allow-pypi-requests: false\n" + DEPS + PIP)
    assert msg.startswith("environment.yml:3:22: allow-pypi-requests: false with no pip-repositories")
    # Direct URLs need no index.
    url = "  - pip\n  - pip:\n    - x @ https://files.example/x-1.0-py3-none-any.whl\n"
    assert lock_inputs(checked(BASE + "allow-pypi-requests: false\n" + DEPS + url)).pypi is True


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ("https://alice:hunter2@host.example/simple", "credentials must come from environment variables"),
        ("https://$pip_token@host.example/simple", "pip expands only upper-case variable names"),
        ("file:///srv/wheels", "is not part of the build context"),
    ],
)
def test_pip_repositories_refused_without_echoing_secrets(repo: str, message: str) -> None:
    msg = refusal(BASE + f"pip-repositories:\n  - {repo}\n" + DEPS + PIP)
    assert msg.startswith("environment.yml:4:5: pip-repositories item ") and message in msg
    assert "hunter2" not in msg


def test_allow_pypi_requests_is_a_boolean() -> None:
    assert "'allow-pypi-requests' must be true or false" in refusal("allow-pypi-requests: no thanks\n" + DEPS)


# --- platform selectors ---------------------------------------------------------------


def test_selectors_drop_lines_for_other_platforms_as_conda_lock_does() -> None:
    text = (
        BASE + "dependencies:\n  - python =3.11\n  - pywin32  # [win]\n  - cudatoolkit  # [linux]\n"
        "  - pip\n  - pip:\n    - pywinpty  # [win]\n    - requests==2.31.0  #[linux64]\n"
    )
    c = checked(text)
    assert c.resolved.spec.conda is not None
    assert c.resolved.spec.conda.dependencies == ("python =3.11", "cudatoolkit", "pip")
    assert c.resolved.spec.conda.pip == ("requests==2.31.0",)
    assert str(c.resolved.loc(("conda", "pip", 0))) == "environment.yml:10:7"
    assert [w.split(": warning: ")[0] for w in c.warnings if "selector" in w] == [
        "environment.yml:5:5",
        "environment.yml:9:7",
    ]


def test_a_selector_that_splits_the_platforms_is_refused() -> None:
    text = BASE + "platforms: [linux-64, linux-aarch64]\ndependencies:\n  - mkl  # [linux64]\n"
    assert "5:5: the platform selector [linux64] keeps this line on linux-64 but not on linux-aarch64" in (
        refusal(text)
    )


# --- keys conda ignores ---------------------------------------------------------------


def test_keys_conda_ignores_are_warned_not_refused() -> None:
    c = checked(BASE + "chanels: [bioconda]\ndescription: my env\n" + DEPS)
    assert (
        "environment.yml:3:1: warning: 'chanels' is not an environment.yml key; conda ignores it and "
        "so does layerkit; did you mean 'channels'?"
    ) in c.warnings
    assert any(w.startswith("environment.yml:4:14: warning: 'description'") for w in c.warnings)
    assert c.resolved.spec.conda is not None and c.resolved.spec.conda.channels == ("conda-forge",)


# --- refusals name the format ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: proj\nchannels:\n  - conda-forge\n",
            "2:1: this looks like a conda environment.yml (it has 'channels') without 'dependencies'",
        ),
        (
            # conda's CEP 24 check: "Invalid type for 'dependencies', expected a list"
            "name: nlp\ndependencies:\nchannels:\n  - anaconda\n",
            "2:1: 'dependencies' has no value; conda refuses it (expected a list)",
        ),
        (
            "base:\n  image: ubuntu:22.04\nchannels: [conda-forge]\n",
            "3:1: 'channels' is a conda environment.yml key, but 'base' makes this a layerkit spec; "
            "there it is conda.channels",
        ),
        (
            "conda:\n  dependencies: [numpy]\ndocker:\n  baseImage: ubuntu:22.04\n",
            "3:1: 'docker' is an Azure ML environment key, but 'conda' makes this a layerkit spec",
        ),
        (
            '{"entryScript": "score.py", "runtime": "spark-py"}',
            "1:40: runtime 'spark-py' is not built by layerkit",
        ),
        (
            "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\nimage: x:1\nos_type: windows\n",
            "3:10: os_type 'windows': layerkit builds Linux images only",
        ),
    ],
)
def test_refusals_name_the_format(text: str, message: str) -> None:
    assert message in refusal(text)


# --- show refuses what validate refuses -----------------------------------------------


@pytest.mark.parametrize("path", sorted([*BAD.glob("*.yaml"), *BAD.glob("*.json")]), ids=lambda p: p.name)
def test_show_exits_2_where_validate_does(cli, path: Path) -> None:
    validated, shown = cli("validate", path), cli("show", path)
    assert (shown.code, shown.out) == (2, "")
    assert shown.err == validated.err


def test_show_refuses_a_semantic_error_it_used_to_print(cli) -> None:
    # user_managed with packages: parses and merges, but validate refuses it.
    path = BAD / "07-user-managed-with-deps.yaml"
    assert cli("validate", path).code == 2
    assert cli("show", path).code == 2


def test_repositories_without_pip_packages_add_no_pip_step() -> None:
    from layerkit.render.renderplan import render_plan

    c = checked(BASE + "pip-repositories: [https://b.example/simple]\n" + DEPS)
    assert c.resolved.spec.conda is not None
    assert c.resolved.spec.conda.pip == ("--extra-index-url https://b.example/simple",)
    plan = render_plan(c)
    assert plan.env_install is not None and plan.env_install.pip_file is None
