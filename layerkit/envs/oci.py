"""Registry operations the environment store needs beyond pulling images: push a blob and a
manifest, read a blob, list a repository's tags and the registry's catalog.

Built on RegistryClient's transport, so auth (Basic, Bearer per scope), loopback HTTP and
the error mapping (unreachable -> RegistryUnreachable) are the ones `layerkit build` uses.
"""

from __future__ import annotations

import json
import re
import urllib.parse

from layerkit.build.registry import RegistryClient, json_object, sha256_digest, upload_put_path
from layerkit.errors import RegistryError, RegistryUnreachable
from layerkit.spec.imageref import is_digest

_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_PAGE = 1000
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _error_code(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or [{}]
        return str(errors[0].get("code", ""))
    except (ValueError, AttributeError, IndexError):
        return ""


class OciClient(RegistryClient):
    def _paged(self, host: str, path: str, scope: str, key: str) -> list[str] | None:
        """Follow the Link headers of a paginated list; None when the repository is unknown."""
        items: list[str] = []
        url: str | None = f"{path}?n={_PAGE}"
        while url:
            resp = self._request("GET", host, url, scope, {"Accept": "application/json"})
            body = resp.read()
            if resp.status == 404 and _error_code(body) == "NAME_UNKNOWN":
                return None
            if resp.status != 200:
                raise RegistryError(f"registry {host}: GET {path} answered HTTP {resp.status}")
            found = json_object(body, f"registry {host}: GET {path}").get(key) or []
            if not isinstance(found, list) or not all(isinstance(x, str) for x in found):
                raise RegistryError(f"registry {host}: GET {path}: '{key}' is not a list of names")
            items.extend(found)
            m = _NEXT.search(resp.getheader("Link", "") or "")
            url = None
            if m:
                nxt = urllib.parse.urlsplit(m.group(1))
                url = f"{nxt.path}?{nxt.query}"
        return items

    def tags(self, host: str, repo: str) -> list[str]:
        return self._paged(host, f"/v2/{repo}/tags/list", self._scope(repo), "tags") or []

    def catalog(self, host: str) -> list[str]:
        try:
            found = self._paged(host, "/v2/_catalog", "registry:catalog:*", "repositories")
        except RegistryUnreachable:
            raise
        except RegistryError as exc:
            if "refused the credentials" in exc.message:
                raise
            raise RegistryError(
                f"registry {host} does not list its repositories ({exc.message}); name the environment: `layerkit env list NAME`"
            ) from None
        return found or []

    def get_blob(self, host: str, repo: str, digest: str) -> bytes:
        if not is_digest(digest):  # it came from a registry's manifest: never into a URL unchecked
            raise RegistryError(f"registry {host}: a manifest of {repo} names no valid blob digest")
        resp = self._request("GET", host, f"/v2/{repo}/blobs/{digest}", self._scope(repo))
        data = resp.read()
        if resp.status != 200:
            raise RegistryError(f"registry {host}: blob {digest[:19]} of {repo} answered HTTP {resp.status}")
        if sha256_digest(data) != digest:
            raise RegistryError(f"registry {host}: blob {digest[:19]} of {repo} does not match its digest")
        return data

    def put_blob(self, host: str, repo: str, data: bytes) -> str:
        """Monolithic upload (POST then PUT with the digest); nothing sent if it is there."""
        digest = sha256_digest(data)
        scope = self._scope(repo, True)
        head = self._request("HEAD", host, f"/v2/{repo}/blobs/{digest}", scope)
        head.read()
        if head.status == 200:
            return digest
        start = self._request("POST", host, f"/v2/{repo}/blobs/uploads/", scope, body=b"", length=0)
        start.read()
        if start.status != 202:
            raise RegistryError(f"registry {host}: blob upload to {repo} refused (HTTP {start.status})")
        put_path = upload_put_path(start.getheader("Location", ""), digest)
        put = self._request("PUT", host, put_path, scope, {"Content-Type": "application/octet-stream"},
                            body=data, length=len(data))  # fmt: skip
        put.read()
        if put.status != 201:
            raise RegistryError(f"registry {host}: blob upload to {repo} failed (HTTP {put.status})")
        return digest

    def put_manifest(self, host: str, repo: str, reference: str, data: bytes, media_type: str) -> str:
        resp = self._request("PUT", host, f"/v2/{repo}/manifests/{reference}", self._scope(repo, True),
                             {"Content-Type": media_type}, body=data, length=len(data))  # fmt: skip
        body = resp.read()
        if resp.status not in (200, 201):
            code = _error_code(body)
            raise RegistryError(
                f"registry {host}: manifest {repo}:{reference} refused (HTTP {resp.status}{', ' + code if code else ''})"
            )
        return sha256_digest(data)

    def referrers(self, host: str, repo: str, digest: str) -> bytes | None:
        """The OCI 1.1 referrers API's index of what refers to `digest`; None when the
        registry has no such API (404: a client then uses the `sha256-<hex>` tag schema)."""
        resp = self._request(
            "GET", host, f"/v2/{repo}/referrers/{digest}", self._scope(repo), {"Accept": OCI_INDEX}
        )
        body = resp.read()
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise RegistryError(
                f"registry {host}: referrers of {repo}@{digest[:19]} answered HTTP {resp.status}"
            )
        return body
