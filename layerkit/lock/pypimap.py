"""The PyPI -> conda name mapping conda-lock reads, shipped so locking needs no GitHub.

conda-lock's default (`--pypi_to_conda_lookup_file` unset) downloads conda-forge's
grayskull_pypi_mapping.json from GitHub on every cold cache. layerkit ships the same table
(pypi-mapping.json.gz beside this file, reduced to the two fields conda-lock reads) and
hands conda-lock a local copy. Where it came from and how to refresh it: pypi-mapping.source
and scripts/refresh-pypi-mapping.py.
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path

from layerkit.atomic import write_text

_PACKAGED = "pypi-mapping.json.gz"


def mapping_file(cache: Path) -> Path:
    """A local JSON copy of the shipped table in `cache` (written once per table version)."""
    raw = gzip.decompress((resources.files("layerkit.lock") / _PACKAGED).read_bytes())
    target = cache / f"pypi-mapping-{hashlib.sha256(raw).hexdigest()[:16]}.json"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        write_text(target, raw.decode("utf-8"))
    return target
