"""The spec example in README.md is a valid spec (with its team layer stubbed)."""

from __future__ import annotations

import re
from pathlib import Path

from layerkit import api

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_spec_example_validates(tmp_path: Path) -> None:
    text = README.read_text()
    block = re.search(r"## The spec: `layerkit.yaml`\n\n```yaml\n(.*?)```", text, re.S)
    assert block, "README lost its spec example"
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "team.yaml").write_text("env: {TEAM: ml}\n")
    spec = tmp_path / "layerkit.yaml"
    spec.write_text(block.group(1))
    rendered = api.render(spec)
    # mirrors.base_registry in the example redirects the catalog image to the mirror
    assert (
        "FROM registry-mirror.internal:5000/nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04 AS base"
        in rendered.dockerfile
    )
    assert rendered.checked.resolved.spec.env == {"TEAM": "ml", "OMP_NUM_THREADS": "4"}


def test_readme_names_every_public_api_function() -> None:
    text = README.read_text()
    section = text.split("### Python API", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in api.__all__ if name != "Rendered" and f"`{name}`" not in section]
    assert missing == [], f"README's Python API section does not name {missing}"
