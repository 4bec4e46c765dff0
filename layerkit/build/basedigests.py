"""What the registries serve now for the base image refs (lock/basepin.py records and
compares them): one manifest HEAD per ref, one failure per unreachable registry."""

from __future__ import annotations

from collections.abc import Sequence

from layerkit.build.lookup import credentials_lookup
from layerkit.build.registry import ImageRef, RegistryClient
from layerkit.errors import RegistryError, RegistryUnreachable
from layerkit.spec.imageref import is_digest
from layerkit.spec.validate import Checked


def _client(checked: Checked, timeout: float) -> RegistryClient:
    reg = checked.resolved.spec.registry
    host = ImageRef.parse(f"{reg.address}/x").registry if reg and reg.address else None
    base = checked.resolved.spec.base
    return RegistryClient(credentials_lookup(reg, host, base.registry if base else None), timeout=timeout)


def current_digests(
    checked: Checked, refs: Sequence[str], timeout: float = 5.0
) -> dict[str, str | Exception]:
    """ref -> the digest its registry serves now, or the RegistryError that stopped us."""
    client = _client(checked, timeout)
    out: dict[str, str | Exception] = {}
    down: dict[str, Exception] = {}
    for ref in refs:
        image = ImageRef.parse(ref)
        if image.registry in down:
            out[ref] = down[image.registry]
            continue
        try:
            info = client.head_manifest(image)
        except RegistryUnreachable as exc:
            out[ref] = down[image.registry] = exc
            continue
        except RegistryError as exc:
            out[ref] = exc
            continue
        if info is None:
            out[ref] = RegistryError(f"{ref}: no such image in its registry")
        elif not is_digest(info.digest):
            out[ref] = RegistryError(f"{ref}: the registry sent no sha256 content digest")
        else:
            out[ref] = info.digest
    return out
