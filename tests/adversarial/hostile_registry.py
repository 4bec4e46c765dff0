"""A registry that answers wrongly, on 127.0.0.1 port 0, for the adversarial suite: a token
service that returns no JSON, a manifest HEAD with `Content-Length: notanint`, a tag list
that is no JSON, SBOM referrers of the wrong shape. Loopback, so layerkit speaks plain HTTP to it as to any local registry."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# `x/img:1` has an SBOM referrer whose answer is wrong: its manifest's layers are not
# descriptors, its layer names no digest, the referrers index names no digest, the document
# is not JSON.
SBOM_MODES = ("sbom-layer-string", "sbom-no-digest", "sbom-bad-referrer", "sbom-not-json")
SBOM_TYPE = "application/vnd.cyclonedx+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _sbom_answers(mode: str) -> dict[str, tuple[bytes, str]]:
    """Path -> (body, content type) of the `x/img` repository for an SBOM mode."""
    image = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
    document = b"\x1b[2Jnot json" if mode == "sbom-not-json" else b"{}"
    layer: object = {
        "sbom-layer-string": "x",
        "sbom-no-digest": {"mediaType": SBOM_TYPE},
    }.get(mode, {"mediaType": SBOM_TYPE, "digest": _sha(document), "size": len(document)})
    artifact = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM_TYPE,
        "layers": [layer], "subject": {"mediaType": OCI_MANIFEST, "digest": _sha(image), "size": len(image)},
    }).encode()  # fmt: skip
    listed = "../../evil" if mode == "sbom-bad-referrer" else _sha(artifact)
    index = json.dumps(
        {"schemaVersion": 2, "manifests": [{"artifactType": SBOM_TYPE, "digest": listed}]}
    ).encode()
    return {
        "/v2/x/img/manifests/1": (image, OCI_MANIFEST),
        f"/v2/x/img/manifests/{_sha(image)}": (image, OCI_MANIFEST),
        f"/v2/x/img/referrers/{_sha(image)}": (index, "application/vnd.oci.image.index.v1+json"),
        f"/v2/x/img/manifests/{_sha(artifact)}": (artifact, OCI_MANIFEST),
        f"/v2/x/img/blobs/{_sha(document)}": (document, "application/octet-stream"),
    }


MODES = ("token", "content-length", "tags", "manifest", *SBOM_MODES)


def _handler(mode: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: the body ends at close

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            host = self.headers.get("Host", "")
            if mode in SBOM_MODES:
                body, kind = _sbom_answers(mode).get(self.path, (b"", ""))
                if not kind:
                    return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {})
                headers = {"Content-Type": kind, "Content-Length": str(len(body))}
                return self._send(200, body, {**headers, "Docker-Content-Digest": _sha(body)})
            if mode == "token":
                if self.path.startswith("/token"):
                    return self._send(200, b"<html>not a token</html>", {"Content-Type": "text/html"})
                if "Authorization" not in self.headers:
                    realm = f'Bearer realm="http://{host}/token",service="stub"'
                    return self._send(401, b"", {"WWW-Authenticate": realm})
            if mode == "content-length" and "/manifests/" in self.path:
                return self._send(200, b"", {
                    "Content-Length": "notanint",
                    "Docker-Content-Digest": "sha256:" + "0" * 64,
                    "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                })  # fmt: skip
            if mode == "manifest" and "/manifests/" in self.path:
                return self._send(200, b"\x1b[2Jnot json", {
                    "Content-Type": "application/vnd.oci.image.index.v1+json",
                    "Docker-Content-Digest": "sha256:" + "0" * 64,
                })  # fmt: skip
            if self.path.startswith("/v2/_catalog") or "/tags/list" in self.path:
                return self._send(200, b"<html>\x1b[31mnot a tag list", {"Content-Type": "application/json"})
            if "/manifests/" in self.path:
                return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {})
            return self._send(200, b"{}", {"Content-Type": "application/json"})

    return Handler


@contextmanager
def hostile_registry(mode: str) -> Iterator[str]:
    """`127.0.0.1:PORT` of a registry misbehaving as `mode` says, for the `with` block."""
    assert mode in MODES, mode
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mode))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
