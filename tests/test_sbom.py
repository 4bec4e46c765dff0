"""The SBOM made from a lock (layerkit/lock/sbom.py): valid CycloneDX 1.5 by the official JSON
schema (shipped in cyclonedx-python-lib), every locked package of the platform in it with its
checksums, build, channel and purl, no credentials, the same bytes every time."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from layerkit.lock.model import Lock, LockedPackage
from layerkit.lock.sbom import cyclonedx, dumps, packages

SHA = "a" * 64
MD5 = "b" * 32
CH = "https://conda.example.com/demo"


def _lock() -> Lock:
    return Lock(
        source="x.conda-lock.yml",
        packages=(
            LockedPackage(manager="conda", platform="linux-64", name="python", version="3.11.9",
                          build="h1_0", url=f"{CH}/linux-64/python-3.11.9-h1_0.conda", sha256=SHA, md5=MD5),
            LockedPackage(manager="conda", platform="linux-64", name="zlib", version="1.3",
                          build="h2_1", url=f"{CH}/linux-64/zlib-1.3-h2_1.tar.bz2", md5=MD5),
            LockedPackage(manager="conda", platform="osx-arm64", name="zlib", version="1.3",
                          build="h9_1", url=f"{CH}/osx-arm64/zlib-1.3-h9_1.tar.bz2", md5=MD5),
            LockedPackage(manager="pip", platform="linux-64", name="Typing_Extensions", version="4.12.2+local",
                          url="https://user:secret@pypi.example.com/files/typing_extensions-4.12.2-py3-none-any.whl",
                          sha256=SHA),
        ),
    )  # fmt: skip


def _doc() -> dict[str, object]:
    return cyclonedx(
        packages(_lock(), "linux-64"), image="localhost:5000/lk", env_hash="c" * 64, platform="linux-64",
        tool_version="0.1.0",
    )  # fmt: skip


def _validator() -> jsonschema.protocols.Validator:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.schema._res import BOM_JSON

    main = Path(str(BOM_JSON[SchemaVersion.V1_5]))
    resources = []
    for name in ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"):
        schema = json.loads((main.parent / name).read_text())
        resources.append((name, Resource.from_contents(schema)))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    schema = json.loads(main.read_text())
    return jsonschema.Draft7Validator(schema, registry=Registry().with_resources(resources))


def test_valid_cyclonedx_1_5() -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(_doc())]
    assert errors == []
    # The validator does reject a broken document (a required field gone).
    broken = {k: v for k, v in _doc().items() if k != "specVersion"}
    assert list(_validator().iter_errors(broken))


def test_every_package_of_the_platform_with_checksums() -> None:
    comps = {c["name"]: c for c in _doc()["components"]}  # type: ignore[attr-defined]
    assert sorted(comps) == ["Typing_Extensions", "python", "zlib"]  # not the osx-arm64 zlib
    py = comps["python"]
    assert py["version"] == "3.11.9"
    assert py["hashes"] == [{"alg": "SHA-256", "content": SHA}, {"alg": "MD5", "content": MD5}]
    assert py["purl"] == f"pkg:conda/python@3.11.9?build=h1_0&channel={CH}&subdir=linux-64&type=conda"
    props = {p["name"]: p["value"] for p in py["properties"]}
    assert props == {"layerkit:manager": "conda", "layerkit:channel": CH, "layerkit:build": "h1_0"}
    assert comps["zlib"]["hashes"] == [{"alg": "MD5", "content": MD5}]
    assert comps["zlib"]["purl"].endswith("build=h2_1&channel=" + CH + "&subdir=linux-64&type=tar.bz2")
    pip = comps["Typing_Extensions"]
    assert pip["purl"] == "pkg:pypi/typing-extensions@4.12.2%2Blocal"
    assert pip["hashes"] == [{"alg": "SHA-256", "content": SHA}]


def test_no_credentials_and_deterministic() -> None:
    data = dumps(_doc())
    assert b"secret" not in data and b"user:" not in data
    assert b"https://pypi.example.com/files/typing_extensions" in data
    assert data == dumps(_doc())
    assert json.loads(data)["metadata"]["component"]["version"] == "c" * 64


@pytest.mark.parametrize("platform", ["linux-64", "osx-arm64"])
def test_counts_per_platform(platform: str) -> None:
    expected = [p.name for p in _lock().packages if p.platform == platform]
    assert sorted(p.name for p in packages(_lock(), platform)) == sorted(expected)
