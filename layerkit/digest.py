"""The content hash's value: canonical JSON, its sha256, and the result hashing/ computes.

At the bottom of the layers: lock (its spec hash), render (the hash labels) and hashing
(the environment hash) all use it, and none of them may import another's layer upward.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

# The version of the hash's input schema; printed as a label and hashed.
# 2: the hash is the normalised rendered build definition (hashing/content.py).
HASH_SCHEMA = 2


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


@dataclass(frozen=True)
class HashResult:
    hash: str
    parts: dict[str, Any]  # the canonical input, part by part
    stages: dict[str, str]  # hashes of shareable stages (base, env)

    def part_digests(self) -> dict[str, str]:
        return {k: digest(v) for k, v in sorted(self.parts.items())}
