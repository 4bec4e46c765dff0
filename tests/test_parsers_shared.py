"""The small grammars that had several copies, now one each in spec/imageref.py and spec/pip.py.

Each table keeps what every former copy accepted and refused: the digest pattern (spec/validate.py
base.digest, lock/unified.py base digests, spec/catalog.py image digests, spec/pip.py --hash),
the tag grammar (envs/models.py versions, build/request.py name tags), Docker Hub's host names
(build/registry.py credentials, build/session.py auth, imageref's legacy host), and
has_digest on refs the parser refuses (was: `"@" in ref`).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from layerkit.build.request import name_tag
from layerkit.envs.models import check_version
from layerkit.errors import SpecError
from layerkit.spec.catalog import DigestRecord
from layerkit.spec.imageref import (
    as_tag,
    has_digest,
    is_digest,
    is_docker_hub,
    is_tag,
    parse_image_ref,
    with_digest,
)
from layerkit.spec.load import load_text
from layerkit.spec.merge import merge_layers
from layerkit.spec.pip import canonical, line_key, project_name

D = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (D, True),
        ("sha256:" + "f" * 64, True),
        ("sha256:" + "A" * 64, False),  # upper-case hex: every copy refused it
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "a" * 65, False),
        ("sha512:" + "a" * 64, False),
        ("a" * 64, False),  # the bare hex catalog `sha256:` fields take is not a digest
        (f" {D}", False),
        (f"{D}\n", False),
        ("", False),
    ],
)
def test_digest_grammar(text: str, ok: bool) -> None:
    assert is_digest(text) is ok
    # the catalog's pydantic fields are built from the same expression
    record = {"ref": "debian:12", "digest": text, "source": "https://example.org/x"}
    if ok:
        assert DigestRecord.model_validate(record).digest == text
    else:
        with pytest.raises(ValidationError, match="digest"):
            DigestRecord.model_validate(record)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1.0", True),
        ("v1_2-rc.3", True),
        ("_x", True),
        ("a" * 128, True),
        ("a" * 129, False),
        (".x", False),
        ("-x", False),
        ("a/b", False),
        ("a b", False),
        ("", False),
    ],
)
def test_tag_grammar(text: str, ok: bool) -> None:
    assert is_tag(text) is ok
    assert (parse_image_ref(f"r.io/x:{text}") is not None) is ok
    if ok and text != "latest":
        assert check_version(text) == text
    elif not ok:
        with pytest.raises(SpecError, match="cannot be a registry tag"):
            check_version(text)


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("app-1.0", "app-1.0"),
        ("My App/2", "My-App-2"),
        ("..-x", "x"),
        ("é", None),
        ("a" * 200, "a" * 128),
    ],
)
def test_as_tag_makes_a_valid_tag(raw: str, tag: str | None) -> None:
    assert as_tag(raw) == tag
    assert tag is None or is_tag(tag)
    assert name_tag(raw, None) == tag


def test_name_tag_joins_version() -> None:
    assert name_tag("app", "1.0") == "app-1.0"
    assert name_tag(None, "1.0") is None


@pytest.mark.parametrize(
    ("host", "hub"),
    [
        ("docker.io", True),
        ("index.docker.io", True),
        ("registry-1.docker.io", True),
        ("docker.io:443", False),
        ("localhost:5000", False),
        ("mcr.microsoft.com", False),
    ],
)
def test_docker_hub_hosts(host: str, hub: bool) -> None:
    assert is_docker_hub(host) is hub


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [
        (f"debian:12@{D}", True),
        ("debian:12", False),
        ("debian@sha256:short", False),  # was True: any `@` counted as a digest
        (f"Debian@{D}", False),  # unparsable (upper case): no valid digest
        ("user@host:x", False),
        ("", False),
    ],
)
def test_has_digest_needs_a_valid_reference(ref: str, pinned: bool) -> None:
    assert has_digest(ref) is pinned
    assert (with_digest(ref, D) == ref) is pinned


# The three former readers of a pip project name: spec/pip.py line_key (merge key) and
# canonical (hashed form), spec/merge.py _PIP_NAMED (which lines the duplicate check reads).
@pytest.mark.parametrize(
    ("line", "name", "key", "canon"),
    [
        ("numpy", "numpy", "numpy", "numpy"),
        ("Foo_Bar.baz==1.0", "foo-bar-baz", "foo-bar-baz", "foo-bar-baz==1.0"),
        ("  Requests[socks] >=2", "requests", "requests", "requests[socks] >=2"),
        ("a--b__c<2", "a-b-c", "a-b-c", "a-b-c<2"),
        ("x!=1", "x", "x", "x!=1"),
        ("x~=1.2", "x", "x", "x~=1.2"),
        ("x; python_version<'3.12'", "x", "x", "x; python_version<'3.12'"),
        ("My.Pkg @ https://h/x.whl", "my-pkg", "my-pkg", "my-pkg @ https://h/x.whl"),
        ("x (>=1)", "x", "x", "x (>=1)"),
        ("X(>=1)", "x", "x", "x(>=1)"),  # was: skipped by merge's duplicate check
        ("x==1 --hash=sha256:" + "a" * 64, "x", "x", "x==1 --hash=sha256:" + "a" * 64),
        # not a name: options, VCS and bare URLs, paths keep their text
        ("--index-url https://h/simple", None, "--index-url", "--index-url https://h/simple"),
        ("git+https://h/Org/My_Repo.git@v1", None, "my-repo", "git+https://h/Org/My_Repo.git@v1"),
        ("https://h/x.whl", None, "https://h/x.whl", "https://h/x.whl"),
        ("./local/pkg", None, "./local/pkg", "./local/pkg"),
        ("Pkg/sub", None, "Pkg/sub", "Pkg/sub"),  # was: keyed `pkg` by line_key, a path for merge
        ("", None, "", ""),
    ],
)
def test_pip_project_name(line: str, name: str | None, key: str, canon: str) -> None:
    assert project_name(line) == name
    assert line_key(line) == key
    assert canonical(line) == canon


def test_duplicate_pip_names_are_found_by_project_name() -> None:
    text = "conda:\n  dependencies: [python=3.11]\n  pip:\n    - Foo_Bar==1\n    - foo-bar(>=2)\n"
    with pytest.raises(SpecError, match="names the package 'foo-bar' again"):
        merge_layers([load_text(text, "l.yaml")])
