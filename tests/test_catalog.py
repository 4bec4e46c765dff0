"""The base-image catalog: every ref parses, every pinned digest is the one its public record
gives for that tag, and the CUDA-from-apt flavours are well-formed."""

from __future__ import annotations

import pytest

from layerkit import api
from layerkit.spec.catalog import Catalog, DigestRecord, load_catalog
from layerkit.spec.imageref import parse_image_ref
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import check

CATALOG = load_catalog()
IMAGES = CATALOG.images


@pytest.mark.parametrize("image", IMAGES, ids=[i.id for i in IMAGES])
def test_every_ref_is_a_tagged_image_reference(image) -> None:
    for ref in (image.devel, image.runtime):
        parsed = parse_image_ref(ref)
        assert parsed is not None, ref
        assert parsed.tag, f"{ref}: a tag says what the digest (or the lock) should be checked against"
        assert parsed.familiar == ref, "refs are written in canonical form, so the digest record matches"


@pytest.mark.parametrize("image", IMAGES, ids=[i.id for i in IMAGES])
def test_every_pinned_digest_is_on_record_for_its_tag(image) -> None:
    recorded = {(r.ref, r.digest) for r in CATALOG.digests}
    for ref in (image.devel, image.runtime):
        parsed = parse_image_ref(ref)
        assert parsed is not None
        if parsed.digest:
            assert (f"{ref.split('@')[0]}", parsed.digest) in recorded, ref


def test_every_record_is_used_and_sourced() -> None:
    pinned = {ref for i in IMAGES for ref in (i.devel, i.runtime) if "@" in ref}
    pinned.add(CATALOG.installer_image.pinned)
    for record in CATALOG.digests:
        assert parse_image_ref(record.ref) is not None
        assert f"{record.ref}@{record.digest}" in pinned, f"unused record {record.ref}"
        assert record.source.startswith("https://github.com/docker-library/repo-info/blob/")


def _with_digest(catalog: Catalog, digest: str) -> Catalog:
    image = next(i for i in catalog.images if "@" in i.devel)
    repo = image.devel.split("@")[0]
    moved = image.model_copy(update={"devel": f"{repo}@{digest}", "runtime": f"{repo}@{digest}"})
    return catalog.model_copy(update={"images": (moved,)})


def test_the_digest_check_fails_on_an_unrecorded_digest() -> None:
    assert _with_digest(CATALOG, CATALOG.digests[0].digest).ref_problems() == []
    problems = _with_digest(CATALOG, "sha256:" + "0" * 64).ref_problems()
    assert len(problems) == 1 and "no record in digests.yaml" in problems[0]


def test_the_digest_check_keys_records_by_tag() -> None:
    # A real digest recorded for another tag does not vouch for this one.
    other = DigestRecord(ref="ubuntu:99.04", digest=CATALOG.digests[0].digest, source="https://example.org/x")
    catalog = _with_digest(CATALOG, CATALOG.digests[0].digest).model_copy(update={"digests": (other,)})
    assert catalog.ref_problems() != []


def test_cuda9_and_cuda10_flavours_build_cuda_from_apt() -> None:
    old = [i for i in IMAGES if i.cuda and i.cuda.split(".")[0] in ("9", "10")]
    assert len(old) == 14
    for image in old:
        assert image.cuda_apt is not None, image.id
        assert not image.devel.startswith("nvidia/cuda:"), "those tags were deleted from Docker Hub"
        names = {p.split("=")[0] for p in image.cuda_apt.packages}
        assert {"libcudnn7", "libnccl2"} <= names
        assert any(p.endswith(f"+cuda{image.cuda[:4].rstrip('.')}") for p in image.cuda_apt.packages)
        assert image.cuda_apt.env["CUDA_VERSION"] == image.cuda


def test_a_plain_distro_ref_does_not_select_a_cuda_apt_flavour() -> None:
    for image in IMAGES:
        if image.cuda_apt is not None:
            found = CATALOG.by_ref(image.devel)
            assert found is None or found.cuda_apt is None


def test_cuda_apt_flavour_renders_its_repositories_and_variables() -> None:
    layer = load_text(
        "name: t\nbase:\n  flavour: cuda10.0-cudnn7.5-ubuntu16.04\nfeatures:\n  gpu: {cuda: '10.0'}\n"
        "conda:\n  dependencies: [numpy=1.26]\n",
        "t.yaml",
    )
    text = api.render(check(resolve(layer))).dockerfile
    assert "gpg --batch --export EB693B3035CD5710E231E123A4B469963BF863CC" in text
    assert "compute/machine-learning/repos/ubuntu1604/x86_64 /" in text
    assert 'PATH="/usr/local/nvidia/bin:/usr/local/cuda/bin:${PATH:-/usr/local/sbin:' in text
    assert 'NVIDIA_REQUIRE_CUDA="cuda>=10.0 brand=tesla' in text
    assert "libcudnn7=7.5.0.56-1+cuda10.0" in text


def test_cuda_apt_is_in_the_hash() -> None:
    def digest(flavour: str, cuda: str) -> str:
        layer = load_text(
            f"name: t\nbase:\n  flavour: {flavour}\nfeatures:\n  gpu: {{cuda: '{cuda}'}}\n", "t.yaml"
        )
        return api.render(check(resolve(layer))).hash.hash

    # Same base ref (ubuntu:16.04@...), different CUDA packages: different environments.
    assert digest("cuda10.0-cudnn7.4-ubuntu16.04", "10.0") != digest("cuda10.0-cudnn7.5-ubuntu16.04", "10.0")
