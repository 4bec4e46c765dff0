"""A multi-platform image's hash: the hash of its image index, over each platform's own hash.

Each platform renders its own Dockerfile, so its own environment hash (hashing/content.py,
the platform inside it) names its own image. The index that lists them is named by the
sorted (platform, per-platform hash) pairs: any platform's change moves it, a reordered
`platforms:` list does not. A single-platform spec has no index: its hash is that platform's.
"""

from __future__ import annotations

from collections.abc import Mapping

from layerkit.digest import HASH_SCHEMA, digest


def index_hash(platform_hashes: Mapping[str, str]) -> str:
    """sha256 over the sorted (platform, per-platform hash) pairs; at least two platforms."""
    if len(platform_hashes) < 2:
        raise ValueError("an image index needs two platforms or more")
    return digest({"schema": HASH_SCHEMA, "index": [[p, h] for p, h in sorted(platform_hashes.items())]})
