"""Docker image references: parse and validate `[host[:port]/]path[:tag][@digest]`."""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
_REF = re.compile(
    rf"^(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "docker.io" when the reference names none
    repository: str
    tag: str | None
    digest: str | None

    @property
    def explicit_tag(self) -> bool:
        return self.tag is not None

    def __str__(self) -> str:
        host = "" if self.registry == "docker.io" else f"{self.registry}/"
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{host}{self.repository}{tag}{digest}"


def parse_image_ref(ref: str) -> ImageRef | None:
    """Return the parsed reference, or None when `ref` is not a valid image reference."""
    if len(ref) > 512:
        return None
    m = _REF.fullmatch(ref)
    if not m:
        return None
    host = m.group("host")
    path = m.group("path")
    # Docker's rule: the first component is a registry only if it looks like a host.
    if host and not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
        path = f"{host}/{path}"
        host = None
        if not re.fullmatch(rf"{_COMPONENT}(?:/{_COMPONENT})*", path):
            return None
    return ImageRef(host or "docker.io", path, m.group("tag"), m.group("digest"))


def mirror(ref: str, base_registry: str | None) -> str:
    """`ref` pulled through the site's mirror of Docker Hub (other registries unchanged)."""
    parsed = parse_image_ref(ref)
    if not base_registry or parsed is None or parsed.registry != "docker.io":
        return ref
    repo = parsed.repository if "/" in parsed.repository else f"library/{parsed.repository}"
    tag = f":{parsed.tag}" if parsed.tag else ""
    digest = f"@{parsed.digest}" if parsed.digest else ""
    return f"{base_registry}/{repo}{tag}{digest}"


def with_digest(ref: str, digest: str | None) -> str:
    if not digest or "@" in ref:
        return ref
    return f"{ref}@{digest}"


def on_registry(ref: str, address: str | None) -> str:
    """`ref` pulled from `address` when it names no registry of its own (Azure ML's
    baseImageRegistry); a ref with a host, or no address, stays as written."""
    parsed = parse_image_ref(ref)
    first = ref.split("/", 1)[0]
    names_host = parsed is not None and (parsed.registry != "docker.io" or first == "docker.io")
    if not address or parsed is None or names_host:
        return ref
    return f"{address.rstrip('/')}/{ref}"
