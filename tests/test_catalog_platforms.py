"""The catalog's platform knowledge (base-images/images/*.yaml `platforms`, `platform_sources`),
its enforcement at validate time (spec/platforms.py), and the CUDA apt repository each platform
renders (render/cuda_apt.py: x86_64, sbsa for arm64)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import ValidationError

from layerkit import api
from layerkit.errors import SpecError
from layerkit.render.cuda_apt import cuda_apt_plan
from layerkit.render.renderplan import render_plan
from layerkit.spec.catalog import TRACKED_PLATFORMS, Catalog, CatalogImage, load_catalog
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

CATALOG = load_catalog()
IMAGES = CATALOG.images
ARM = "linux-aarch64"


def _check(text: str, catalog: Catalog | None = None) -> Checked:
    return check(resolve(load_text(text, "s.yaml")), catalog)


@pytest.mark.parametrize("image", IMAGES, ids=[i.id for i in IMAGES])
def test_every_flavour_says_its_platforms_and_where_that_was_read(image: CatalogImage) -> None:
    assert "linux-64" in image.platforms  # every flavour's images are x86_64 ones
    assert set(image.platforms) <= set(TRACKED_PLATFORMS)
    for source in image.platform_sources:
        assert "https://" in source, f"{image.id}: a source says where it was read: {source}"


def test_the_researched_arm64_facts() -> None:
    arm = set(CATALOG.with_platform(ARM))
    # ubuntu:XX.04 are multi-platform; nvidia/cuda 11.8+ has arm64 (sbsa) images; onnxruntime's
    # CPU wheels have aarch64 builds; Open MPI builds from source on arm64.
    assert {f"cpu-ubuntu{v}" for v in ("16.04", "18.04", "20.04", "22.04", "24.04")} <= arm
    assert {i.id for i in IMAGES if i.devel.startswith("nvidia/cuda:12.") and not i.pip} <= arm
    assert {"onnxruntime-cpu", "onnxruntime1.32-cpu-ubuntu24.04", "openmpi3.1.2-ubuntu18.04"} <= arm
    # No arm64: onnxruntime-gpu / -openvino wheels, Intel MPI, CUDA 9/10 from x86_64 repos, Azure ML.
    for image in IMAGES:
        if any(p.startswith(("onnxruntime-gpu==", "onnxruntime-openvino==")) for p in image.pip):
            assert image.id not in arm, image.id
        if (image.mpi and image.mpi.kind == "intelmpi") or image.cuda_apt is not None:
            assert image.id not in arm, image.id
        if image.devel.startswith("mcr.microsoft.com/azureml/"):
            assert image.id not in arm, image.id
    assert len(arm) == 17


def _entry(**update: object) -> dict[str, object]:
    doc = IMAGES[0].model_dump(mode="json")
    doc.update(update)
    return doc


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ({"platforms": ["linux-64", "linux-ppc64le"]}, "not tracked"),
        ({"platforms": ["linux-64", "linux-64"]}, "listed twice"),
        ({"platforms": []}, "at least 1"),
        ({"platform_sources": []}, "at least 1"),
        ({"platforms": ["linux-arm64"]}, "linux-aarch64"),  # the spec's names, not Docker's
    ],
)
def test_a_bad_platforms_entry_is_refused(update: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        CatalogImage.model_validate(_entry(**update))
    doc = _entry()
    del doc["platforms"]
    with pytest.raises(ValidationError, match="platforms"):
        CatalogImage.model_validate(doc)  # required: every entry states it


def test_a_named_flavour_without_arm64_is_refused_at_the_platforms_entry() -> None:
    text = (
        "name: s\nbase:\n  flavour: intelmpi2018.3-ubuntu16.04\nplatforms:\n  - linux-64\n  - linux-aarch64\n"
    )
    with pytest.raises(SpecError) as err:
        _check(text)
    assert err.value.location is not None and (err.value.location.line, err.value.location.col) == (6, 5)
    msg = str(err.value)
    assert "base flavour 'intelmpi2018.3-ubuntu16.04'" in msg and "has no linux-aarch64 variant" in msg
    assert f"flavours with linux-aarch64: {', '.join(CATALOG.with_platform(ARM))}" in msg
    # The same flavour for linux-64 alone is fine.
    assert _check(text.replace("  - linux-aarch64\n", "")).image is not None


def test_features_pick_a_flavour_with_every_platform_when_one_exists() -> None:
    text = "name: s\nfeatures:\n  mpi: openmpi\n  gpu: {cuda: '12.8'}\nplatforms: [linux-64, linux-aarch64]\n"
    image = _check(text).image
    assert image is not None and image.id == "openmpi4.1.6-cuda12.8-cudnn9-ubuntu22.04"
    # Without arm64 in the spec the choice is what it always was.
    only = _check(text.replace(", linux-aarch64", "")).image
    assert only is not None and only.id == "openmpi4.1.6-cuda12.8-cudnn9-ubuntu22.04"
    # Open MPI without CUDA: ubuntu18.04 is the newest CPU Open MPI flavour, and it has arm64.
    cpu = _check("name: s\nfeatures: {mpi: openmpi}\nplatforms: [linux-aarch64]\n").image
    assert cpu is not None and cpu.id == "openmpi3.1.2-ubuntu18.04"


def test_a_base_of_the_users_is_not_refused_but_warned_about() -> None:
    text = "name: s\nbase:\n  image: registry.example/team/base:1\nplatforms: [linux-64, linux-aarch64]\n"
    checked = _check(text)
    assert checked.image is None
    warned = [w for w in checked.warnings if "linux-aarch64 variant" in w]
    assert warned == [
        "s.yaml:4:23: warning: layerkit cannot tell whether base image 'registry.example/team/base:1' has a "
        "linux-aarch64 variant; the build fails if it has none"
    ]
    assert not [w for w in _check(text.replace(", linux-aarch64", "")).warnings if "variant" in w]


def _sbsa_catalog() -> Catalog:
    """A CUDA-from-apt flavour that claims arm64: the catalog has none (NVIDIA's CUDA 9/10
    repositories are x86_64 only), so the per-platform repository logic gets one made up."""
    old = next(i for i in IMAGES if i.id == "cuda10.0-cudnn7.5-ubuntu16.04")
    assert old.cuda_apt is not None
    repos = tuple(
        r.model_copy(update={"root": r.root.replace("ubuntu1604", "ubuntu2204")}) for r in old.cuda_apt.repos
    )
    image = old.model_copy(
        update={"platforms": ("linux-64", ARM), "cuda_apt": old.cuda_apt.model_copy(update={"repos": repos})}
    )
    return CATALOG.model_copy(update={"images": (*IMAGES, image.model_copy(update={"id": "apt-sbsa"}))})


def test_the_cuda_apt_repository_is_the_platforms_directory() -> None:
    image = _sbsa_catalog().get("apt-sbsa")
    amd, arm = cuda_apt_plan(image, "linux-64"), cuda_apt_plan(image, ARM)
    assert amd is not None and arm is not None
    cuda = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204"
    assert (amd.sources[0].url, amd.sources[0].key_url) == (f"{cuda}/x86_64", f"{cuda}/x86_64/3bf863cc.pub")
    assert (arm.sources[0].url, arm.sources[0].key_url) == (f"{cuda}/sbsa", f"{cuda}/sbsa/3bf863cc.pub")
    assert arm.model_copy(update={"sources": amd.sources}) == amd  # only the repositories differ


def test_an_arm64_render_installs_cuda_from_the_sbsa_repositories() -> None:
    spec = (
        "name: s\nbase:\n  flavour: apt-sbsa\nfeatures:\n  gpu: {cuda: '10.0'}\n"
        "platforms: [linux-64, linux-aarch64]\nconda:\n  dependencies: [numpy=1.26]\n"
    )
    checked = _check(spec, _sbsa_catalog())
    arm = api.render(checked, platform=ARM).dockerfile
    amd = api.render(checked, platform="linux-64").dockerfile
    assert 'echo "deb [signed-by=/usr/share/keyrings/layerkit-nvidia-1.gpg] ' in arm
    assert "compute/cuda/repos/ubuntu2204/sbsa /" in arm and "ubuntu2204/sbsa/3bf863cc.pub" in arm
    assert "compute/machine-learning/repos/ubuntu2204/sbsa /" in arm
    assert "x86_64" not in arm.split(" AS env")[0]  # the base stage fetches nothing for x86_64
    assert "compute/cuda/repos/ubuntu2204/x86_64 /" in amd and "/sbsa" not in amd


def test_a_flavour_without_an_arm64_repository_never_renders_x86_64_for_arm64() -> None:
    image = CATALOG.get("cuda10.0-cudnn7.5-ubuntu16.04")
    with pytest.raises(SpecError, match="records no CUDA apt repository for linux-aarch64"):
        cuda_apt_plan(image, ARM)
    # Reached only past validate: a checked spec whose platforms changed after the refusal ran.
    checked = _check("name: s\nbase:\n  flavour: cuda10.0-cudnn7.5-ubuntu16.04\n")
    spec = checked.resolved.spec.model_copy(update={"platforms": ("linux-64", ARM)})
    forced = dataclasses.replace(checked, resolved=dataclasses.replace(checked.resolved, spec=spec))
    assert render_plan(forced, None, "linux-64").cuda_apt is not None
    with pytest.raises(SpecError, match="records no CUDA apt repository for linux-aarch64"):
        render_plan(forced, None, ARM)


def test_flavours_shows_each_flavours_platforms(cli) -> None:
    rows = {line.split()[0]: line.split()[1] for line in cli("flavours").out.splitlines()}
    assert rows["cpu-ubuntu22.04"] == "linux-64,linux-aarch64"
    assert rows["onnxruntime-tensorrt"] == "linux-64"
    doc = {d["id"]: d for d in json.loads(cli("flavours", "--json").out)}
    assert doc["cuda12.8-cudnn9-ubuntu24.04"]["platforms"] == ["linux-64", ARM]
    assert doc["openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"]["platforms"] == ["linux-64"]
    assert all(d["platform_sources"] for d in doc.values())


def test_a_cuda_apt_flavour_is_refused_any_platform_it_records_no_repository_for() -> None:
    # linux-ppc64le is not tracked, so a plain flavour is not refused it; a CUDA-from-apt one
    # would render no repository for it (render/cuda_apt.py), so validate says so first.
    assert (
        _check("name: s\nbase:\n  flavour: cpu-ubuntu22.04\nplatforms: [linux-ppc64le]\n").image is not None
    )
    with pytest.raises(SpecError, match="has no linux-ppc64le variant") as err:
        _check(
            "name: s\nbase:\n  flavour: cuda9.0-cudnn7.4-ubuntu16.04\nplatforms: [linux-64, linux-ppc64le]\n"
        )
    assert err.value.location is not None and (err.value.location.line, err.value.location.col) == (4, 23)
