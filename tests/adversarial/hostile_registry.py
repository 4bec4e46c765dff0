"""A registry that answers wrongly, on 127.0.0.1 port 0, for the adversarial suite: a token
service that returns no JSON, a manifest HEAD with `Content-Length: notanint`, a tag list
that is no JSON. Loopback, so layerkit speaks plain HTTP to it as to any local registry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("token", "content-length", "tags", "manifest")


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
