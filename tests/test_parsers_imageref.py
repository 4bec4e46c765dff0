"""The one image-reference parser (spec/imageref.py), held to Docker's distribution/reference.

The tables keep every input form the four former parsers handled (spec/imageref.py,
build/registry.py ImageRef.parse, build/llb.py normalize_image_ref, render/renderplan.py's `@`
checks) and the two loopback lists (build/registry.py, build/request.py). Rows marked
"was:" are where those copies disagreed, or all differed from Docker; Docker's meaning won.
"""

from __future__ import annotations

import pytest

from layerkit.build.request import is_local_registry
from layerkit.errors import SpecError
from layerkit.spec.imageref import (
    ImageRef,
    has_digest,
    is_address,
    is_loopback,
    is_repository_path,
    mirror,
    names_registry,
    on_registry,
    parse_image_ref,
    registry_of,
    split_ref,
    with_digest,
)

D = "sha256:" + "a" * 64

# ref -> (registry, repository, tag, digest), canonical form (what BuildKit is sent), familiar form
VALID = [
    ("debian", ("docker.io", "library/debian", None, None), "docker.io/library/debian:latest", "debian"),
    ("debian:12", ("docker.io", "library/debian", "12", None), "docker.io/library/debian:12", "debian:12"),
    ("team/env:v2", ("docker.io", "team/env", "v2", None), "docker.io/team/env:v2", "team/env:v2"),
    ("library/a/b", ("docker.io", "library/a/b", None, None), "docker.io/library/a/b:latest", "library/a/b"),
    # was: docker.io/ubuntu kept repository "ubuntu" (a 404 on Docker Hub) in three copies; mirror() added library/
    (
        "docker.io/ubuntu",
        ("docker.io", "library/ubuntu", None, None),
        "docker.io/library/ubuntu:latest",
        "ubuntu",
    ),
    (
        "docker.io/library/ubuntu:22.04",
        ("docker.io", "library/ubuntu", "22.04", None),
        "docker.io/library/ubuntu:22.04",
        "ubuntu:22.04",
    ),
    # was: index.docker.io kept as its own registry; Docker reads it as docker.io
    ("index.docker.io/x/y:1", ("docker.io", "x/y", "1", None), "docker.io/x/y:1", "x/y:1"),
    ("localhost/foo", ("localhost", "foo", None, None), "localhost/foo:latest", "localhost/foo"),
    (
        "localhost:5000/a/b:1",
        ("localhost:5000", "a/b", "1", None),
        "localhost:5000/a/b:1",
        "localhost:5000/a/b:1",
    ),
    (
        "localhost",
        ("docker.io", "library/localhost", None, None),
        "docker.io/library/localhost:latest",
        "localhost",
    ),
    (f"r.example.com/x@{D}", ("r.example.com", "x", None, D), f"r.example.com/x@{D}", f"r.example.com/x@{D}"),
    (
        f"debian:12@{D}",
        ("docker.io", "library/debian", "12", D),
        f"docker.io/library/debian:12@{D}",
        f"debian:12@{D}",
    ),
    ("My.Registry.io/a:1", ("My.Registry.io", "a", "1", None), "My.Registry.io/a:1", "My.Registry.io/a:1"),
    # was: build/registry.py refused an IPv6 host
    ("[::1]:5000/x:1", ("[::1]:5000", "x", "1", None), "[::1]:5000/x:1", "[::1]:5000/x:1"),
    (
        "a__b/c-d--e.f_g:T.a-g_",
        ("docker.io", "a__b/c-d--e.f_g", "T.a-g_", None),
        "docker.io/a__b/c-d--e.f_g:T.a-g_",
        "a__b/c-d--e.f_g:T.a-g_",
    ),
    # was: spec/imageref.py refused ports over 5 digits; Docker takes any
    ("host:123456/x", ("host:123456", "x", None, None), "host:123456/x:latest", "host:123456/x"),
    (
        "a:" + "t" * 128,
        ("docker.io", "library/a", "t" * 128, None),
        "docker.io/library/a:" + "t" * 128,
        "a:" + "t" * 128,
    ),
]

INVALID = [
    "",
    "UPPER/case",
    "Foo/bar",  # an upper-case first component without `.`/`:` is no host (both old copies refused)
    "a b",
    "x:tag:tag",
    "host:5000/",
    "/a",
    "a/",
    "a//b",
    "-a",
    "a:",
    "a@",
    "a:-tag",
    "a:" + "t" * 129,
    "a@sha256:abc",
    "a@sha256:" + "A" * 64,
    "a@md5:" + "a" * 32,
    "a..b",  # was: build/registry.py took any run of `._-` as a separator
    "a._b",  # was: as above
    "a/b:tàg",  # was: spec/imageref.py read a tag's \w as Unicode
    "debian\n",  # was: build/registry.py's `$` let a trailing newline through
    "a" * 240,  # was: spec/imageref.py allowed 512 characters; Docker's name limit is 255, normalised
    "[abc]/x",  # an IPv6 host needs a `:` to be read as a host
]


@pytest.mark.parametrize(("ref", "parts", "canonical", "familiar"), VALID)
def test_valid_references(ref: str, parts: tuple[object, ...], canonical: str, familiar: str) -> None:
    r = ImageRef.parse(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == parts
    assert r.canonical == str(r) == canonical
    assert r.familiar == familiar
    assert parse_image_ref(r.familiar) == r, "the familiar form reads back as the same image"
    assert r.reference == (r.digest or r.tag or "latest")


@pytest.mark.parametrize("ref", INVALID)
def test_invalid_references(ref: str) -> None:
    assert parse_image_ref(ref) is None
    with pytest.raises(SpecError, match="bad image reference"):
        ImageRef.parse(ref)


def test_longest_name_is_255_normalised() -> None:
    path = "a" * (255 - len("docker.io/library/"))
    assert ImageRef.parse(path).name == f"docker.io/library/{path}"
    assert parse_image_ref(path + "a") is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.0.0.2:5000", True),  # was: not in either list; containerd and dockerd take all of 127/8
        ("::1", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("example.com", False),
        ("example.com:5000", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("docker.io", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("repo", "local"),
    [
        ("localhost:5000/layerkit", True),
        ("127.0.0.1:5000/a/b", True),
        ("[::1]:5000/a", True),
        ("registry.example.com/layerkit", False),
        ("layerkit", False),
        ("localhost", False),  # a repository named localhost, on Docker Hub
    ],
)
def test_local_registry_repositories(repo: str, local: bool) -> None:
    assert is_local_registry(repo) is local
    if "/" in repo:
        assert is_loopback(ImageRef.parse(f"{repo}:1").registry) is local


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("layerkit:abc", ("layerkit", "abc", None)),
        ("localhost:5000/x", ("localhost:5000/x", None, None)),  # was: runner split at the port's `:`
        ("localhost:5000/x:1", ("localhost:5000/x", "1", None)),
        (f"x@{D}", ("x", None, D)),  # was: runner split inside the digest
        (f"docker.io/library/x:1@{D}", ("docker.io/library/x", "1", D)),
    ],
)
def test_split_ref_keeps_the_name_as_written(ref: str, parts: tuple[object, ...]) -> None:
    assert split_ref(ref) == parts


@pytest.mark.parametrize(
    ("ref", "mirrored"),
    [
        ("ubuntu:22.04", "mirror.local:5000/library/ubuntu:22.04"),
        ("docker.io/ubuntu:22.04", "mirror.local:5000/library/ubuntu:22.04"),
        ("docker.io/library/ubuntu:22.04", "mirror.local:5000/library/ubuntu:22.04"),
        ("team/x:1", "mirror.local:5000/team/x:1"),
        (f"ubuntu@{D}", f"mirror.local:5000/library/ubuntu@{D}"),
        ("index.docker.io/team/x:1", "mirror.local:5000/team/x:1"),  # was: not mirrored (not read as Hub)
        ("mcr.microsoft.com/x:1", "mcr.microsoft.com/x:1"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("NOT A REF", "NOT A REF"),
    ],
)
def test_mirror_only_rewrites_docker_hub(ref: str, mirrored: str) -> None:
    assert mirror(ref, "mirror.local:5000") == mirror(ref, "mirror.local:5000/") == mirrored
    assert mirror(ref, None) == ref


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [("debian:12", False), (f"debian:12@{D}", True), (f"r.io:5000/x@{D}", True), ("r.io:5000/x", False)],
)
def test_digest_pinning(ref: str, pinned: bool) -> None:
    assert has_digest(ref) is pinned
    other = "sha256:" + "b" * 64
    assert with_digest(ref, other) == (ref if pinned else f"{ref}@{other}")
    assert with_digest(ref, None) == ref


@pytest.mark.parametrize(
    ("ref", "named"),
    [
        ("team/base:1", False),
        ("ubuntu", False),
        ("docker.io/library/ubuntu:22.04", True),
        ("index.docker.io/x:1", True),
        ("localhost/x", True),
        ("r.io:5000/x", True),
    ],
)
def test_names_registry(ref: str, named: bool) -> None:
    assert names_registry(ref) is named
    assert on_registry(ref, "acr.io") == (ref if named else f"acr.io/{ref}")


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("localhost:5000", "localhost:5000"),
        ("localhost:5000/team/", "localhost:5000"),
        ("r.io/a/b", "r.io"),
        ("team", "docker.io"),
        ("docker.io/team", "docker.io"),
    ],
)
def test_registry_of_an_address(address: str, host: str) -> None:
    assert registry_of(address) == host


# The spec's registry addresses (registry.address, base.registry.address, mirrors.base_registry)
# were checked by a looser regex of their own in spec/validate.py.
@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("localhost:5000", True),
        ("localhost:5000/team", True),
        ("myacr.azurecr.io", True),
        ("myacr.azurecr.io/", True),  # was: refused; every user strips the `/`
        ("r.io/a/b/", True),
        ("registry", True),  # a Docker Hub namespace, as Docker reads it
        ("[::1]:5000", True),  # was: refused
        ("host:123456", True),  # was: refused (5-digit ports); Docker takes any
        ("a..b.io", False),  # was: accepted, then refused by the build's parser
        ("-a.io", False),  # was: accepted
        ("UPPER", False),  # was: accepted; no `.`/`:`, so a path component, which is lower-case
        ("r.io/Team", False),
        ("r.io:port", False),
        ("r.io/x:1", False),
        ("", False),
        ("r.io//x", False),
    ],
)
def test_registry_addresses(address: str, valid: bool) -> None:
    assert is_address(address) is valid


# registry.repository: spec/validate.py and build/request.py each had `[._/-]` separators.
@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("layerkit", True),
        ("team/layerkit", True),
        ("a.b_c-d", True),
        ("a__b", True),  # was: refused; Docker's separator takes `__`
        ("a--b", True),  # was: refused; Docker's separator takes `-+`
        ("a._b", False),
        ("Team", False),
        ("/a", False),
        ("a/", False),
        ("", False),
    ],
)
def test_repository_paths(path: str, valid: bool) -> None:
    assert is_repository_path(path) is valid
    if valid:
        assert ImageRef.parse(f"r.io/{path}:1").repository == path
