"""Layer merging: the rules derived from the model, and provenance of merged values."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit.errors import SpecError
from layerkit.spec.merge import conda_key, pip_key, resolve


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_scalars_later_wins_and_provenance(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "description: from a\nruntime:\n  user: alice\n  workdir: /a\n")
    b = write(tmp_path, "b.yaml", "extends: [a.yaml]\nruntime:\n  user: bob\n")
    r = resolve(b)
    assert r.spec.runtime is not None
    assert (r.spec.runtime.user, r.spec.runtime.workdir) == ("bob", "/a")
    assert r.spec.description == "from a"
    assert str(r.provenance[("runtime", "user")]) == f"{b}:3:9"
    assert str(r.provenance[("runtime", "workdir")]).startswith(f"{tmp_path / 'a.yaml'}:4:")


def test_lists_ordered_union_and_keyed_replacement(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        "apt: [git, curl]\nconda:\n  dependencies: [numpy=1.24, scipy]\n  pip: [Requests==2.0]\n",
    )
    b = write(
        tmp_path,
        "b.yaml",
        "extends: [a.yaml]\napt: [curl, jq]\nconda:\n  dependencies: [numpy=1.26, pandas]\n  pip: [requests==2.32]\n",
    )
    s = resolve(b).spec
    assert s.apt == ("git", "curl", "jq")
    assert s.conda is not None
    assert s.conda.dependencies == ("numpy=1.26", "scipy", "pandas")
    assert s.conda.pip == ("requests==2.32",)


def test_dicts_deep_merge(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "env: {A: '1', B: '2'}\nmirrors:\n  channels: {conda-forge: 'http://m/cf'}\n")
    b = write(tmp_path, "b.yaml", "extends: [a.yaml]\nenv: {B: '3', C: '4'}\n")
    s = resolve(b).spec
    assert s.env == {"A": "1", "B": "3", "C": "4"}
    assert s.mirrors is not None and s.mirrors.channels == {"conda-forge": "http://m/cf"}


def test_channel_priority_kept_and_conflicts_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "conda:\n  channels: [conda-forge, defaults]\n")
    ok = write(tmp_path, "ok.yaml", "extends: [a.yaml]\nconda:\n  channels: [mirror, conda-forge]\n")
    assert resolve(ok).spec.conda.channels == ("mirror", "conda-forge", "defaults")  # type: ignore[union-attr]
    bad = write(tmp_path, "bad.yaml", "extends: [a.yaml]\nconda:\n  channels: [defaults, conda-forge]\n")
    with pytest.raises(SpecError, match="conflicts") as exc:
        resolve(bad)
    assert exc.value.location is not None and exc.value.location.file == str(bad)


def test_depth_first_each_layer_once(tmp_path: Path) -> None:
    write(tmp_path, "root.yaml", "env: {ORDER: root}\napt: [root]\n")
    write(tmp_path, "left.yaml", "extends: [root.yaml]\nenv: {ORDER: left}\napt: [left]\n")
    write(tmp_path, "right.yaml", "extends: [root.yaml]\nenv: {ORDER: right}\napt: [right]\n")
    top = write(tmp_path, "top.yaml", "extends: [left.yaml, right.yaml]\n")
    r = resolve(top)
    assert [Path(layer.source).name for layer in r.layers] == [
        "root.yaml",
        "left.yaml",
        "right.yaml",
        "top.yaml",
    ]
    assert r.spec.apt == ("root", "left", "right")
    assert r.spec.env == {"ORDER": "right"}


def test_cycle_is_an_error_with_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: [b.yaml]\n")
    write(tmp_path, "b.yaml", "extends: [a.yaml]\n")
    with pytest.raises(SpecError, match=r"extends cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        resolve(tmp_path / "a.yaml")


def test_base_source_is_replaced_not_combined(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "base:\n  flavour: cpu-ubuntu22.04\n  digest: sha256:" + "a" * 64 + "\n")
    b = write(tmp_path, "b.yaml", "extends: [a.yaml]\nbase:\n  image: ubuntu:20.04\n")
    base = resolve(b).spec.base
    assert base is not None
    assert (base.image, base.flavour, base.digest) == ("ubuntu:20.04", None, "sha256:" + "a" * 64)


def test_builtin_layer(tmp_path: Path) -> None:
    spec = write(tmp_path, "s.yaml", "extends: ['layerkit:datasets']\n")
    r = resolve(spec)
    assert r.spec.features is not None and r.spec.features.datasets is True
    assert r.layers[0].source == "builtin:datasets"


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("numpy", "numpy"),
        ("conda-forge::NumPy>=1", "numpy"),
        ("python=3.11", "python"),
        ("pytorch 2.1.*", "pytorch"),
    ],
)
def test_conda_key(spec: str, key: str) -> None:
    assert conda_key(spec) == key


@pytest.mark.parametrize(
    ("spec", "key"),
    [("Requests==2", "requests"), ("zope.interface>=5", "zope-interface"), ("foo_bar[x]", "foo-bar")],
)
def test_pip_key(spec: str, key: str) -> None:
    assert pip_key(spec) == key


def test_a_package_twice_in_one_list_is_an_error_but_a_later_layer_replaces_it(tmp_path: Path) -> None:
    """Issue 12 §4: `numpy=1.18.1` and `numpy=1.19` in one list named no error."""
    from layerkit.errors import SpecError
    from layerkit.spec.merge import resolve

    (tmp_path / "base.yaml").write_text("conda:\n  dependencies: [numpy=1.18.1, python=3.11]\n")
    top = tmp_path / "top.yaml"
    top.write_text("extends: [base.yaml]\nconda:\n  dependencies: [numpy=1.19]\n")
    assert resolve(top).spec.conda.dependencies == ("numpy=1.19", "python=3.11")  # type: ignore[union-attr]
    top.write_text("extends: [base.yaml]\nconda:\n  dependencies: [numpy=1.19, conda-forge::numpy>=1.20]\n")
    with pytest.raises(
        SpecError,
        match=r"'conda-forge::numpy>=1.20' names the package 'numpy' again \(line 3: 'numpy=1.19'\)",
    ):
        resolve(top)
