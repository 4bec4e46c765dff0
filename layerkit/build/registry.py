"""A minimal OCI distribution client: manifest HEAD/GET, image size, copy between registries.

Only the stdlib: skip-by-hash must answer fast, without importing grpc or the docker SDK.
Auth follows the registry's challenge: Basic, or Bearer tokens from the realm it names
(cached per host and scope). Loopback registries speak plain HTTP, as dockerd assumes.
Credentials never appear in messages or reprs.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from layerkit.build.credentials import Credentials
from layerkit.errors import RegistryError, RegistryUnreachable
from layerkit.spec.imageref import DOCKER_HUB, HUB_API, is_digest, is_loopback
from layerkit.spec.imageref import ImageRef as ImageRef  # the one parser; build code names it here

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = MANIFEST_TYPES[:2]
_CHUNK = 1 << 20


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """A registry's JSON answer, or RegistryError: a proxy's HTML page or a truncated body is
    the registry's fault (exit 3), never a traceback. The body itself is not echoed."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise RegistryError(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return doc


def _objects(doc: Mapping[str, Any], key: str, what: str) -> list[dict[str, Any]]:
    items = doc.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RegistryError(f"{what}: '{key}' is not a list of objects")
    return items


def sha256_digest(data: bytes) -> str:
    """The content digest of a manifest or blob, as registries name it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_digest(client: RegistryClient, ref: ImageRef) -> str | None:
    """The manifest digest `ref` names now, None when it is missing. A registry that answers
    HEAD without a usable digest header is asked for the manifest, whose digest is then
    computed here."""
    info = client.head_manifest(ref)
    if info is None:
        return None
    return info.digest if is_digest(info.digest) else client.get_manifest(ref)[2]


def listed(doc: Mapping[str, Any], os_: str, arch: str, what: str) -> dict[str, Any] | None:
    """The first descriptor an image index lists for os/arch (a variant is not asked), None
    when it lists none."""
    if not isinstance(doc.get("manifests"), list):
        raise RegistryError(f"{what}: 'manifests' is not a list")
    for m in _objects(doc, "manifests", what):
        p = m.get("platform")
        if isinstance(p, dict) and p.get("os") == os_ and p.get("architecture") == arch:
            return m
    return None


def _blobs(doc: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """An image manifest's config and layer descriptors."""
    return _objects({"config": [doc.get("config") or {}]}, "config", what) + _objects(doc, "layers", what)


def _size(value: object, what: str) -> int:
    """A size from a manifest or a Content-Length header: a non-negative integer."""
    try:
        n = int(str(value), 10)
    except ValueError:
        raise RegistryError(f"{what}: size {str(value)[:20]!r} is not a number") from None
    if n < 0:
        raise RegistryError(f"{what}: size {n} is negative")
    return n


def _digest(descriptor: dict[str, Any], what: str) -> str:
    """A descriptor's digest, checked before it goes into a URL path."""
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}", digest):
        raise RegistryError(f"{what}: a descriptor's digest is not a sha256 or sha512 digest")
    return digest


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


def upload_put_path(location: str, digest: str) -> str:
    """The PUT that completes a blob upload: the registry's Location plus ``digest=``."""
    parts = urllib.parse.urlsplit(location)
    sep = "&" if parts.query else ""
    return f"{parts.path}?{parts.query}{sep}digest={urllib.parse.quote(digest)}"


class RegistryClient:
    def __init__(
        self,
        credentials: Callable[[str], Credentials | None] | None = None,
        *,
        timeout: float = 10.0,
        insecure: Iterable[str] = (),
    ) -> None:
        self._credentials = credentials or (lambda host: None)
        self._timeout = timeout
        self._insecure = set(insecure)
        self._tokens: dict[tuple[str, str], str] = {}
        self._basic: set[str] = set()

    # -- transport -------------------------------------------------------------------------
    def _scheme(self, host: str) -> str:
        return "http" if is_loopback(host) or host in self._insecure else "https"

    def _conn(self, host: str) -> http.client.HTTPConnection:
        cls = http.client.HTTPConnection if self._scheme(host) == "http" else http.client.HTTPSConnection
        netloc = HUB_API if host == DOCKER_HUB else host
        return cls(netloc, timeout=self._timeout)

    def _auth_header(self, host: str, scope: str) -> dict[str, str]:
        token = self._tokens.get((host, scope))
        if token:
            return {"Authorization": f"Bearer {token}"}
        if host in self._basic:
            creds = self._credentials(host)
            if creds:
                raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
                return {"Authorization": f"Basic {raw}"}
        return {}

    def _request(
        self, method: str, host: str, path: str, scope: str, headers: Mapping[str, str] | None = None,
        body: bytes | Iterator[bytes] | None = None, length: int | None = None,
    ) -> http.client.HTTPResponse:  # fmt: skip
        for attempt in range(2):
            conn = self._conn(host)
            hdrs = {**(headers or {}), **self._auth_header(host, scope)}
            if length is not None:
                hdrs["Content-Length"] = str(length)
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise RegistryUnreachable(f"registry {host} is unreachable: {exc}") from None
            if resp.status != 401 or attempt == 1 or not isinstance(body, bytes | None):
                if resp.status == 401:
                    resp.read()
                    raise RegistryError(f"registry {host} refused the credentials ({method} {path})")
                return resp
            challenge = resp.getheader("WWW-Authenticate", "")
            resp.read()
            conn.close()
            self._login(host, scope, challenge)
        raise AssertionError("unreachable")

    def _login(self, host: str, scope: str, challenge: str) -> None:
        kind, _, params = challenge.partition(" ")
        if kind.lower() == "basic":
            if not self._credentials(host):
                raise RegistryError(f"registry {host} needs credentials and none are configured")
            self._basic.add(host)
            return
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm")
        if kind.lower() != "bearer" or not realm:
            raise RegistryError(f"registry {host}: unsupported auth challenge {kind!r}")
        query = {"service": fields.get("service", ""), "scope": scope}
        url = urllib.parse.urlsplit(realm)
        creds = self._credentials(host)
        hdrs = {}
        if creds:
            raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            hdrs["Authorization"] = f"Basic {raw}"
        conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(url.netloc, timeout=self._timeout)
        try:
            conn.request("GET", f"{url.path}?{urllib.parse.urlencode(query)}", headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryUnreachable(f"token service of {host} is unreachable: {exc}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise RegistryError(
                f"registry {host} refused the credentials (token service: HTTP {resp.status})"
            )
        doc = json_object(data, f"registry {host}: the token service's answer")
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {host}: the token service's answer holds no token")
        self._tokens[(host, scope)] = token

    @staticmethod
    def _scope(repo: str, push: bool = False) -> str:
        return f"repository:{repo}:{'pull,push' if push else 'pull'}"

    # -- API -------------------------------------------------------------------------------
    def head_manifest(self, ref: ImageRef) -> ManifestInfo | None:
        path = f"/v2/{ref.repository}/manifests/{ref.reference}"
        resp = self._request(
            "HEAD", ref.registry, path, self._scope(ref.repository), {"Accept": ",".join(MANIFEST_TYPES)}
        )
        resp.read()
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise RegistryError(f"registry {ref.registry}: HEAD {ref} answered HTTP {resp.status}")
        return ManifestInfo(
            resp.getheader("Docker-Content-Digest", ""),
            resp.getheader("Content-Type", ""),
            _size(
                resp.getheader("Content-Length", "0"), f"registry {ref.registry}: HEAD {ref} Content-Length"
            ),
        )

    def get_manifest(self, ref: ImageRef) -> tuple[bytes, str, str]:
        path = f"/v2/{ref.repository}/manifests/{ref.reference}"
        resp = self._request(
            "GET", ref.registry, path, self._scope(ref.repository), {"Accept": ",".join(MANIFEST_TYPES)}
        )
        data = resp.read()
        if resp.status != 200:
            raise RegistryError(f"registry {ref.registry}: GET {ref} answered HTTP {resp.status}")
        digest = sha256_digest(data)
        if ref.digest and ref.digest.startswith("sha256:") and digest != ref.digest:
            # Asked by digest: anything else is not what was asked for (and maybe verified).
            raise RegistryError(f"registry {ref.registry}: GET {ref} answered a manifest of another digest")
        return data, resp.getheader("Content-Type", ""), digest

    def _platform_manifest(self, ref: ImageRef, platform: str) -> dict[str, object]:
        data, media, _ = self.get_manifest(ref)
        what = f"registry {ref.registry}: manifest of {ref}"
        doc = json_object(data, what)
        if media in _INDEX_TYPES:
            os_, _, arch = platform.partition("/")
            m = listed(doc, os_, arch.split("/")[0], what)
            if m is None:
                raise RegistryError(f"{ref} has no manifest for {platform}")
            return self._platform_manifest(
                ImageRef(ref.registry, ref.repository, None, _digest(m, what)), platform
            )
        return doc

    def image_size(self, ref: ImageRef, platform: str = "linux/amd64") -> int:
        """Compressed bytes a pull transfers: config plus layers."""
        doc: dict[str, Any] = self._platform_manifest(ref, platform)
        what = f"registry {ref.registry}: manifest of {ref}"
        blobs = _blobs(doc, what)
        return sum(_size(b.get("size", 0), what) for b in blobs)

    def open_blob(self, ref: ImageRef, digest: str) -> http.client.HTTPResponse:
        """A blob as a stream (read it in chunks: a layer may be gigabytes); close it after."""
        digest = _digest({"digest": digest}, f"registry {ref.registry}: a blob of {ref.repository}")
        path = f"/v2/{ref.repository}/blobs/{digest}"
        resp = self._request("GET", ref.registry, path, self._scope(ref.repository))
        hops = 0
        while resp.status in (301, 302, 303, 307, 308) and hops < 3:
            # Most registries hand blobs to their storage (S3, GCS, a CDN) by redirect, to a
            # pre-signed URL: followed without the registry's credentials.
            base = f"{self._scheme(ref.registry)}://{ref.registry}{path}"
            url = urllib.parse.urlsplit(urllib.parse.urljoin(base, resp.getheader("Location", "")))
            resp.read()
            resp.close()
            if url.scheme not in ("http", "https") or not url.hostname:
                raise RegistryError(
                    f"registry {ref.registry}: blob {digest[:19]} redirects to no http(s) URL"
                )
            cls = http.client.HTTPConnection if url.scheme == "http" else http.client.HTTPSConnection
            conn = cls(url.netloc, timeout=self._timeout)
            path = url.path + (f"?{url.query}" if url.query else "")
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise RegistryUnreachable(
                    f"registry {ref.registry}: blob storage is unreachable: {exc}"
                ) from None
            hops += 1
        if resp.status != 200:
            resp.close()
            raise RegistryError(f"registry {ref.registry}: blob {digest[:19]} answered HTTP {resp.status}")
        return resp

    def config_blob(self, ref: ImageRef, digest: str, limit: int = 8 << 20) -> bytes:
        """A small blob (an image config), checked against its digest."""
        with self.open_blob(ref, digest) as resp:
            data = resp.read(limit + 1)
        if len(data) > limit:
            raise RegistryError(f"registry {ref.registry}: blob {digest[:19]} is larger than {limit} bytes")
        if digest.startswith("sha256:") and sha256_digest(data) != digest:
            raise RegistryError(f"registry {ref.registry}: blob {digest[:19]} does not match its digest")
        return data

    def _has_blob(self, ref: ImageRef, digest: str) -> bool:
        resp = self._request(
            "HEAD", ref.registry, f"/v2/{ref.repository}/blobs/{digest}", self._scope(ref.repository, True)
        )
        resp.read()
        return resp.status == 200

    def _copy_blob(self, src: ImageRef, dst: ImageRef, digest: str, size: int) -> None:
        if self._has_blob(dst, digest):
            return
        scope = self._scope(dst.repository, True)
        base = f"/v2/{dst.repository}/blobs/uploads/"
        if src.registry == dst.registry:
            q = urllib.parse.urlencode({"mount": digest, "from": src.repository})
            resp = self._request("POST", dst.registry, f"{base}?{q}", scope, body=b"", length=0)
            resp.read()
            if resp.status == 201:
                return
        else:
            resp = self._request("POST", dst.registry, base, scope, body=b"", length=0)
            resp.read()
        if resp.status != 202:
            raise RegistryError(f"registry {dst.registry}: blob upload refused (HTTP {resp.status})")
        put_path = upload_put_path(resp.getheader("Location", ""), digest)
        get = self._request(
            "GET", src.registry, f"/v2/{src.repository}/blobs/{digest}", self._scope(src.repository)
        )
        if get.status != 200:
            raise RegistryError(f"registry {src.registry}: blob {digest[:19]} answered HTTP {get.status}")

        def chunks() -> Iterator[bytes]:
            while block := get.read(_CHUNK):
                yield block

        put = self._request("PUT", dst.registry, put_path, scope, {"Content-Type": "application/octet-stream"},
                            body=chunks(), length=size)  # fmt: skip
        put.read()
        if put.status != 201:
            raise RegistryError(
                f"registry {dst.registry}: blob {digest[:19]} upload failed (HTTP {put.status})"
            )

    def copy(self, src: ImageRef, dst: ImageRef) -> str:
        """Copy an image (an index with all its manifests) and its blobs; return the manifest digest."""
        data, media, digest = self.get_manifest(src)
        what = f"registry {src.registry}: manifest of {src}"
        doc = json_object(data, what)
        if media in _INDEX_TYPES:
            for m in _objects(doc, "manifests", what):
                child = _digest(m, what)
                self.copy(ImageRef(src.registry, src.repository, None, child),
                          ImageRef(dst.registry, dst.repository, None, child))  # fmt: skip
        else:
            for blob in _blobs(doc, what):
                if blob.get("digest"):
                    self._copy_blob(src, dst, _digest(blob, what), _size(blob.get("size", 0), what))
        path = f"/v2/{dst.repository}/manifests/{dst.tag or (digest if dst.digest else 'latest')}"
        resp = self._request("PUT", dst.registry, path, self._scope(dst.repository, True), {"Content-Type": media},
                             body=data, length=len(data))  # fmt: skip
        resp.read()
        if resp.status not in (200, 201):
            raise RegistryError(
                f"registry {dst.registry}: manifest upload for {dst} failed (HTTP {resp.status})"
            )
        return digest

    def push_manifest(self, ref: ImageRef, data: bytes, media_type: str) -> str:
        """Put a manifest (an image index layerkit assembled) at `ref`'s tag; its digest.
        Whatever it lists must be in the repository already (the registry checks)."""
        path = f"/v2/{ref.repository}/manifests/{ref.reference}"
        resp = self._request("PUT", ref.registry, path, self._scope(ref.repository, True),
                             {"Content-Type": media_type}, body=data, length=len(data))  # fmt: skip
        resp.read()
        if resp.status not in (200, 201):
            raise RegistryError(
                f"registry {ref.registry}: manifest upload for {ref} failed (HTTP {resp.status})"
            )
        return sha256_digest(data)
