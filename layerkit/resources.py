"""Locate shipped data (templates/, base-images/): inside the wheel they live in
layerkit/_data/; in a source checkout or editable install, at the repository root."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


@cache
def data_dir(name: str) -> Traversable:
    """`name` is "templates" or "base-images"."""
    packaged = resources.files("layerkit") / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"layerkit data folder {name!r} is missing from this installation")


def cache_dir() -> Path:
    """layerkit's own cache (build locks, the env index; tests/test_cache_trust.py audits its users):
    $LAYERKIT_CACHE or ~/.cache/layerkit."""
    return Path(os.environ.get("LAYERKIT_CACHE", Path.home() / ".cache" / "layerkit"))
