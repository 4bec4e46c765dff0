"""How to build: where BuildKit is, where images go, what to tag and print. Below builder.py
and lookup.py, which both read it (builder.py re-exports it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from layerkit.build.request import Network

if TYPE_CHECKING:
    from layerkit.build.progress import Mode
    from layerkit.build.tls import TLSConfig


@dataclass(frozen=True)
class BuildOptions:
    addr: str | None = None  # BuildKit: unix://, tcp://, docker://; default BUILDKIT_HOST / DOCKER_HOST
    registry: str | None = None  # overrides the spec's registry.address
    push: bool = True
    force: bool = False
    network: Network = "default"
    progress: Mode = "auto"
    tags: tuple[str, ...] = ()  # extra tags; the spec's name-version is added unless name_tag=False
    name_tag: bool = True
    tls: TLSConfig | None = None  # client TLS for tcp:// buildkitd
    sign_key: str | None = None  # cosign key: sign every image the build pushes (build/signing.py)
    require_signature: str | None = None  # cosign public key: reuse only images it verifies
