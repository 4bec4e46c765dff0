"""Read conda-lock's unified lockfile (conda-lock.yml, version 1) into a Lock."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from layerkit import inputs
from layerkit.errors import Position, SpecError
from layerkit.lock.model import Lock, LockedPackage
from layerkit.spec.imageref import is_digest
from layerkit.spec.matchspec import archive

SPEC_HASH_KEY = "layerkit_spec_hash"
BASE_DIGESTS_KEY = "layerkit_base_digests"  # JSON object {image ref: sha256 digest}
_GLIBC_FLOOR = re.compile(r">=?\s*([0-9]+(?:\.[0-9]+)*)")


def parse_unified(data: Any, source: str) -> Lock:
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("package"), list):
        raise SpecError(
            "not a conda-lock v1 lockfile (version: 1 with a package list)", Position(source, 1, 1)
        )
    meta = data.get("metadata") or {}
    custom = meta.get("custom_metadata") or {} if isinstance(meta, dict) else {}
    packages = []
    for i, p in enumerate(data["package"]):
        try:
            url = str(p["url"])
            hashes = p.get("hash") or {}
            manager = p["manager"]
            build = ""
            if manager == "conda":
                build = a.build if (a := archive(url)) else ""
            packages.append(
                LockedPackage(
                    manager=manager,
                    platform=str(p["platform"]),
                    name=str(p["name"]),
                    version=str(p["version"]),
                    build=build,
                    url=url,
                    sha256=hashes.get("sha256"),
                    md5=hashes.get("md5"),
                    glibc=_glibc_floor((p.get("dependencies") or {}).get("__glibc")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"lock package #{i + 1} is malformed ({exc})", Position(source)) from None
    spec_hash = custom.get(SPEC_HASH_KEY) if isinstance(custom, dict) else None
    return Lock(
        source=source,
        spec_hash=str(spec_hash) if spec_hash else None,
        packages=tuple(packages),
        base_digests=_base_digests(
            custom.get(BASE_DIGESTS_KEY) if isinstance(custom, dict) else None, source
        ),
    )


def _glibc_floor(constraint: Any) -> str | None:
    """'>=2.17,<3.0.a0' -> '2.17': the glibc a package needs at least."""
    m = _GLIBC_FLOOR.search(constraint) if isinstance(constraint, str) else None
    return m.group(1) if m else None


def _base_digests(raw: Any, source: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    try:
        doc = json.loads(str(raw))
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and is_digest(v) for k, v in doc.items()
    ):
        raise SpecError(
            f"metadata.custom_metadata.{BASE_DIGESTS_KEY} must be a JSON object of image ref -> sha256 digest; "
            "run `layerkit lock` again",
            Position(source),
        )
    return tuple(sorted(doc.items()))


def read_unified(path: Path) -> Lock:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    text = inputs.read_text(path, "lock", max_bytes=inputs.MAX_LOCK_BYTES)
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise SpecError(
            f"lockfile is not valid YAML: {str(exc).splitlines()[0]}", Position(str(path))
        ) from None
    return parse_unified(data, str(path))
