"""Azure ML's baseImageRegistry: the base image is pulled from it when it names no registry of
its own, for a plain baseImage and for one under extraDockerfileSteps alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layerkit.spec.imageref import on_registry


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("team/base:1", "myacr.azurecr.io/team/base:1"),
        ("ubuntu:22.04", "myacr.azurecr.io/ubuntu:22.04"),
        ("docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:22.04"),  # names Docker Hub
        ("mcr.microsoft.com/azureml/base:1", "mcr.microsoft.com/azureml/base:1"),
        ("localhost:5000/base:1", "localhost:5000/base:1"),
    ],
)
def test_a_ref_without_a_registry_is_pulled_from_the_address(ref: str, want: str) -> None:
    assert on_registry(ref, "myacr.azurecr.io/") == want
    assert on_registry(ref, None) == ref


def test_extra_dockerfile_steps_run_on_the_base_from_base_image_registry(cli, tmp_path: Path) -> None:
    (tmp_path / "steps.txt").write_text("RUN echo hi\n")
    config = tmp_path / "inferenceconfig.json"
    config.write_text(json.dumps({
        "entryScript": "score.py", "runtime": "python", "baseImage": "team/base:1",
        "baseImageRegistry": {"address": "myacr.azurecr.io"}, "extraDockerfileSteps": "steps.txt",
    }))  # fmt: skip
    r = cli("render", config)
    assert r.code == 0, r.err
    assert "FROM myacr.azurecr.io/team/base:1 AS " in r.out
    assert "FROM team/base:1" not in r.out
