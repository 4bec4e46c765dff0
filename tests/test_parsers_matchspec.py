"""Conda package names are read in spec/matchspec.py only: specs (parse/name_of) and, since
lock/explicit.py and lock/unified.py each had a copy of the archive-name regex, package
archive file names (archive). The table keeps the cases both copies handled."""

from __future__ import annotations

import pytest

from layerkit.errors import SpecError
from layerkit.lock.explicit import parse_explicit
from layerkit.lock.unified import parse_unified
from layerkit.spec.matchspec import Archive, archive, name_of

CH = "https://conda.anaconda.org/conda-forge/linux-64"

ARCHIVES = [
    ("numpy-1.26.4-py311h64a7726_0.conda", Archive("numpy", "1.26.4", "py311h64a7726_0")),
    ("python-dateutil-2.8.2-pyhd8ed1ab_0.tar.bz2", Archive("python-dateutil", "2.8.2", "pyhd8ed1ab_0")),
    ("_libgcc_mutex-0.1-conda_forge.tar.bz2", Archive("_libgcc_mutex", "0.1", "conda_forge")),
    (f"{CH}/libzlib-1.3.1-hb9d3cd8_2.conda", Archive("libzlib", "1.3.1", "hb9d3cd8_2")),
    ("file:///srv/channel/noarch/tzdata-2024a-h0c530f3_0.conda", Archive("tzdata", "2024a", "h0c530f3_0")),
    ("numpy-1.26.4.conda", None),  # no build
    ("numpy-1.26.4-py311_0.whl", None),
    ("numpy-1.26.4-py311_0.tar.gz", None),
    ("numpy-1.26.4-py311_0.conda/", None),
    ("", None),
]


@pytest.mark.parametrize(("url", "want"), ARCHIVES)
def test_archive_names(url: str, want: Archive | None) -> None:
    assert archive(url) == want


@pytest.mark.parametrize(("url", "want"), [(u, w) for u, w in ARCHIVES if "://" in u])
def test_both_lock_formats_read_archives_alike(url: str, want: Archive) -> None:
    explicit = parse_explicit(f"# platform: linux-64\n@EXPLICIT\n{url}\n", "x.txt").packages[0]
    assert (explicit.name, explicit.version, explicit.build) == (want.name, want.version, want.build)
    doc = {"version": 1, "package": [{"name": want.name, "version": want.version, "manager": "conda",
                                      "platform": "linux-64", "url": url, "hash": {}}]}  # fmt: skip
    assert parse_unified(doc, "x.yml").packages[0].build == want.build


def test_explicit_refuses_a_url_that_names_no_archive() -> None:
    with pytest.raises(SpecError, match="does not name a conda package archive"):
        parse_explicit(f"@EXPLICIT\n{CH}/numpy-1.26.4.conda\n", "x.txt")


def test_a_pip_package_in_a_unified_lock_has_no_build() -> None:
    doc = {"version": 1, "package": [{"name": "x", "version": "1", "manager": "pip", "platform": "linux-64",
                                      "url": "https://files/x-1-py3-none-any.whl", "hash": {}}]}  # fmt: skip
    assert parse_unified(doc, "x.yml").packages[0].build == ""


@pytest.mark.parametrize(
    ("spec", "name"),
    [("conda-forge::numpy>=1", "numpy"), ("python!=3.9", "python"), ("python >=3.8,<3.9", "python"),
     ("numpy 1.26.* py311*", "numpy"), ("pytorch::pytorch[build=cuda*]", "pytorch"), ("", None)],
)  # fmt: skip
def test_spec_names(spec: str, name: str | None) -> None:
    assert name_of(spec) == name
