"""Refusals that name the format a file looks like.

`parse.detect_format` reads a file as layerkit's own format unless its keys say otherwise. A
file that holds keys of another format (a conda environment.yml without `dependencies`, Azure
ML keys beside layerkit's) would otherwise be refused as "unknown key ... in the top level";
`check` says instead which format the key belongs to and what is missing.
"""

from __future__ import annotations

import difflib
from typing import Any

from layerkit.errors import Position, SpecError, excerpt
from layerkit.spec.models import Spec
from layerkit.spec.parse import Positions

# Keys both layerkit and another format use say nothing about which one a file is.
_SHARED = {"name", "version", "description", "platforms", "runtime"}
LAYERKIT_ONLY = tuple(k for k in Spec.model_fields if k not in _SHARED)

# environment.yml key -> where a layerkit spec says the same thing
ENV_YML = {
    "channels": "conda.channels",
    "dependencies": "conda.dependencies",
    "variables": "env",
    "pip-repositories": "'--extra-index-url URL' lines in conda.pip",
    "allow-pypi-requests": "an '--index-url URL' line in conda.pip (it replaces PyPI)",
    "prefix": "not used (the image has one environment)",
    "category": "not used (an image installs every layer it is given)",
}
_AML_ENV = ("python", "docker", "environmentVariables", "inferencingStackVersion", "spark",
            "databricks", "r", "assetId", "tags", "properties")  # fmt: skip
_AML_INFERENCE = ("entryScript", "environment", "sourceDirectory", "enableGpu", "condaFile",
                  "extraDockerfileSteps", "baseImage", "baseImageRegistry")  # fmt: skip
READS = (
    "a layerkit spec; a conda environment.yml; Azure ML's v2 environment YAML; its v1 environment JSON "
    "(or a folder saved by Environment.save_to_directory); a v1 .runconfig; a v1 inference config; a v1 "
    "deployment config; a v2 online deployment YAML"
)
AML_V2 = ("$schema", "image", "conda_file", "build", "os_type", "inference_config")
AML_V2_PREVIEW = (
    "this looks like the Azure ML v2 preview environment YAML (docker.image, conda_file), which the "
    "v2 schema replaced and layerkit does not read; write the image as base.image and give the "
    "conda_file to layerkit as an environment.yml"
)


def _first(data: dict[str, Any], keys: tuple[str, ...] | dict[str, str], pos: Positions) -> str | None:
    found = [k for k in data if k in keys]
    return min(found, key=lambda k: pos.get((k,), (0, 0))) if found else None


def _message(data: dict[str, Any], key: str) -> str:
    mine = next((k for k in data if k in LAYERKIT_ONLY), None)
    if key in ENV_YML:
        if mine is not None:
            return (
                f"'{key}' is a conda environment.yml key, but '{mine}' makes this a layerkit spec; "
                f"there it is {ENV_YML[key]}"
            )
        return (
            f"this looks like a conda environment.yml (it has '{key}') without 'dependencies'; "
            "list the packages under 'dependencies:' (conda requires that list too)"
        )
    if key in AML_V2:
        if mine is not None:
            return (
                f"'{key}' is an Azure ML v2 environment key, but '{mine}' makes this a layerkit spec; write "
                "the environment in one format"
            )
        return (
            f"this looks like an Azure ML v2 environment YAML (it has '{key}'); it needs 'image' or 'build'"
        )
    if key in _AML_INFERENCE:
        if "entryScript" not in data:
            return "this looks like an Azure ML v1 inference config without 'entryScript'; add it"
        return (
            f"'{key}' is an Azure ML inference config key, but '{mine}' makes this a layerkit spec; write "
            "the environment in one format (the scoring script is serve.entry_script there)"
        )
    if mine is not None:
        return (
            f"'{key}' is an Azure ML environment key, but '{mine}' makes this a layerkit spec; write the "
            "environment in one format"
        )
    return f"'{key}' is an Azure ML environment key; that format also needs 'python' or 'docker'"


def check(data: Any, pos: Positions, source: str) -> None:
    """Refuse a file read as layerkit's format that holds another format's keys, naming it."""
    if not isinstance(data, dict):
        return
    keys = (*ENV_YML, *AML_V2, *_AML_INFERENCE, *_AML_ENV)
    key = _first(data, keys, pos)
    if key is None:
        near = [k for k in data if difflib.get_close_matches(k, list(Spec.model_fields), n=1)]
        if data and not near and not set(data) & set(Spec.model_fields):
            first = min(data, key=lambda k: pos.get((k,), (0, 0)))
            line, col = pos.get((first,), (1, 1))
            raise SpecError(
                f"unknown key {excerpt(first)}: not a format layerkit reads ({READS})",
                Position(source, line, col),
            )
        return
    line, col = pos.get((key,), (1, 1))
    raise SpecError(_message(data, key), Position(source, line, col))
