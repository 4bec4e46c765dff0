"""Docker image references, the one parser: `[host[:port]/]path[:tag][@digest]`.

The grammar and normalisation are Docker's (distribution/reference: regexp.go, normalize.go):
a first component names a registry only when it holds `.` or `:` or is `localhost`; no
registry means Docker Hub (`docker.io`, also for the legacy `index.docker.io`), whose
one-component repositories live under `library/`; the name (host and path) is at most 255
characters. Only sha256 digests are accepted (nothing else in layerkit handles another).
Loopback hosts follow containerd's docker.IsLocalhost (`localhost` or a loopback IP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from layerkit.errors import SpecError

DOCKER_HUB = "docker.io"
HUB_API = "registry-1.docker.io"  # where Docker Hub's registry API answers
_LEGACY_HUB = "index.docker.io"  # normalised to docker.io when parsing, as Docker does
HUB_HOSTS = (DOCKER_HUB, _LEGACY_HUB, HUB_API)  # every name Docker Hub's credentials are kept under
_TAG_CHARS = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST_CHARS = r"sha256:[0-9a-f]{64}"
TAG = re.compile(_TAG_CHARS)  # a tag, Docker's grammar (fullmatch)
DIGEST = re.compile(_DIGEST_CHARS)  # a sha256 content digest (fullmatch)
_NOT_TAG = re.compile(r"[^A-Za-z0-9_.-]+")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_REF = re.compile(
    rf"(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG_CHARS}))?(?:@(?P<digest>{_DIGEST_CHARS}))?"
)
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_NAME_MAX = 255


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "docker.io" when the reference names none
    repository: str  # with Docker Hub's "library/" prefix
    tag: str | None = None  # as written: None when the reference has none
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        """The parsed reference; SpecError when `ref` is not one."""
        parsed = parse_image_ref(ref)
        if parsed is None:
            raise SpecError(f"bad image reference {ref!r}: expected [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]")
        return parsed

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag (`latest` unless written)."""
        return self.digest or self.tag or "latest"

    @property
    def canonical(self) -> str:
        """Docker's fully qualified form, `latest` filled in when neither tag nor digest is given
        (reference.TagNameOnly), as BuildKit resolves it."""
        tag = f":{self.tag}" if self.tag else "" if self.digest else ":latest"
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"

    @property
    def familiar(self) -> str:
        """Docker's short form (reference.FamiliarString): no `docker.io/`, no `library/` for an
        official image, tag and digest as written."""
        path = self.repository
        if self.registry == DOCKER_HUB:
            short = path.removeprefix("library/")
            path = short if "/" not in short else path
        host = "" if self.registry == DOCKER_HUB else f"{self.registry}/"
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{host}{path}{tag}{digest}"

    def __str__(self) -> str:
        return self.canonical


def _names_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost"


def parse_image_ref(ref: str) -> ImageRef | None:
    """Return the parsed reference, or None when `ref` is not a valid image reference."""
    m = _REF.fullmatch(ref)
    if not m:
        return None
    host, path = m.group("host"), m.group("path")
    if host and not _names_registry(host):
        # Docker's split: this component is a path component, so it must be one.
        path = f"{host}/{path}"
        host = None
        if not _PATH.fullmatch(path):
            return None
    registry = DOCKER_HUB if host in (None, _LEGACY_HUB) else host
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(registry) + 1 + len(path) > _NAME_MAX:  # counted normalised, as Docker does
        return None
    return ImageRef(registry, path, m.group("tag"), m.group("digest"))


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """(the name as written, the tag, the digest): what `docker pull/push` take apart;
    SpecError when `ref` is not a reference."""
    parsed = ImageRef.parse(ref)
    name = ref.removesuffix(f"@{parsed.digest}") if parsed.digest else ref
    return name.removesuffix(f":{parsed.tag}") if parsed.tag else name, parsed.tag, parsed.digest


def names_registry(ref: str) -> bool:
    """Whether `ref` spells out a registry of its own (`docker.io/…` included)."""
    first, slash, _ = ref.partition("/")
    return bool(slash) and _names_registry(first)


def is_repository_path(path: str) -> bool:
    """A repository path in Docker's grammar: lower-case components joined by `/`."""
    return _PATH.fullmatch(path) is not None


def is_address(address: str) -> bool:
    """`host[:port][/path]` (a trailing `/` allowed): a place images are pushed to or pulled from."""
    return parse_image_ref(f"{address.rstrip('/')}/x") is not None


def registry_of(address: str) -> str:
    """The registry host of a repository address (`localhost:5000/team` -> `localhost:5000`)."""
    return ImageRef.parse(f"{address.rstrip('/')}/x").registry


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP, with or without a port (containerd's docker.IsLocalhost;
    dockerd and BuildKit speak plain HTTP to these)."""
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    import ipaddress  # only here: not on every import of the parser

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_digest(text: str) -> bool:
    """`sha256:` and 64 lower-case hex digits: the only digest layerkit handles."""
    return DIGEST.fullmatch(text) is not None


def is_tag(text: str) -> bool:
    """A valid tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`."""
    return TAG.fullmatch(text) is not None


def as_tag(raw: str) -> str | None:
    """`raw` made a valid tag (runs of other characters become `-`), or None when nothing is left."""
    tag = _NOT_TAG.sub("-", raw).lstrip(".-")[:128]
    return tag or None


def is_docker_hub(host: str) -> bool:
    """Whether `host` is one of Docker Hub's names (`docker.io`, its legacy and API hosts)."""
    return host in HUB_HOSTS


def has_digest(ref: str) -> bool:
    """Whether `ref` is pinned by a valid digest; an unparsable ref has none (callers then
    look its digest up or leave it to the spec checks, which refuse it)."""
    parsed = parse_image_ref(ref)
    return parsed is not None and parsed.digest is not None


def mirror(ref: str, base_registry: str | None) -> str:
    """`ref` pulled through the site's mirror of Docker Hub (other registries unchanged)."""
    parsed = parse_image_ref(ref)
    if not base_registry or parsed is None or parsed.registry != DOCKER_HUB:
        return ref
    tag = f":{parsed.tag}" if parsed.tag else ""
    digest = f"@{parsed.digest}" if parsed.digest else ""
    return f"{base_registry.rstrip('/')}/{parsed.repository}{tag}{digest}"


def with_digest(ref: str, digest: str | None) -> str:
    if not digest or has_digest(ref):
        return ref
    return f"{ref}@{digest}"


def on_registry(ref: str, address: str | None) -> str:
    """`ref` pulled from `address` when it names no registry of its own (Azure ML's
    baseImageRegistry); a ref with a host, or no address, stays as written."""
    if not address or parse_image_ref(ref) is None or names_registry(ref):
        return ref
    return f"{address.rstrip('/')}/{ref}"
