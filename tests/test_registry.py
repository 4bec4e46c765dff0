"""The OCI registry client: references, credentials, and real registries (anonymous + htpasswd)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from fixtures_services import AuthRegistry, Services, refused_port

from layerkit.build.credentials import Credentials, resolve_credentials
from layerkit.build.registry import ImageRef, RegistryClient
from layerkit.errors import RegistryError, RegistryUnreachable

D = "sha256:" + "a" * 64


def test_credentials_from_named_env_vars_and_docker_config(tmp_path: Path) -> None:
    env = {"U": "alice", "P": "s3cret"}
    c = resolve_credentials("r:5000", username_env="U", password_env="P", environ=env)
    assert c == Credentials("alice", "s3cret")
    assert "s3cret" not in repr(c)
    with pytest.raises(RegistryError, match="MISSING is not set") as err:
        resolve_credentials("r:5000", username_env="U", password_env="MISSING", environ=env)
    assert "s3cret" not in str(err.value)
    cfg = tmp_path / "config.json"
    auth = base64.b64encode(b"bob:pw:with:colons").decode()
    cfg.write_text(json.dumps({"auths": {"https://r.example.com": {"auth": auth}}}))
    assert resolve_credentials("r.example.com", environ={}, docker_config=cfg) == Credentials(
        "bob", "pw:with:colons"
    )
    assert resolve_credentials("other.example.com", environ={}, docker_config=cfg) is None


def _helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A fake `docker-credential-fake` on PATH and a docker config naming it for r.example.com."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker-credential-fake"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"credHelpers": {"r.example.com": "fake"}}))
    return cfg


@pytest.mark.parametrize(
    "answer",
    ["[]", '"s3cret"', "null", "not json", '{"Username": "u"}', '{"Username": ["u"], "Secret": "s3cret"}'],
)
def test_a_credential_helper_answering_no_object_is_one_line_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    cfg = _helper_on_path(tmp_path, monkeypatch, f"cat >/dev/null; printf '%s' '{answer}'\n")
    with pytest.raises(RegistryError, match="credential helper docker-credential-fake answered") as err:
        resolve_credentials("r.example.com", environ={}, docker_config=cfg)
    assert err.value.exit_code == 3 and "\n" not in str(err.value) and "s3cret" not in str(err.value)


def test_a_credential_helper_is_asked_for_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = 'read host; printf \'{"ServerURL": "%s", "Username": "u-%s", "Secret": "pw"}\' "$host" "$host"\n'
    cfg = _helper_on_path(tmp_path, monkeypatch, script)
    assert resolve_credentials("r.example.com", environ={}, docker_config=cfg) == Credentials(
        "u-r.example.com", "pw"
    )


def test_a_credential_helper_with_nothing_for_the_host_means_anonymous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _helper_on_path(tmp_path, monkeypatch, "echo 'credentials not found in native keychain'; exit 1\n")
    assert resolve_credentials("r.example.com", environ={}, docker_config=cfg) is None


def test_unreachable_registry_fails_fast() -> None:
    # Fails on the refusal itself, not on the deadline (that would read "timed out").
    client = RegistryClient(timeout=3)
    with pytest.raises(RegistryUnreachable, match=r"is unreachable: .*refused"):
        client.head_manifest(ImageRef.parse(f"localhost:{refused_port()}/x:1"))


@pytest.mark.integration
def test_head_size_and_copy_between_registries(services: Services, auth_registry: AuthRegistry) -> None:
    anon = RegistryClient()
    base = ImageRef.parse(services.base_image)
    info = anon.head_manifest(base)
    assert info is not None and info.digest.startswith("sha256:")
    assert anon.head_manifest(ImageRef(base.registry, base.repository, "no-such-tag")) is None
    raw, _, digest = anon.get_manifest(base)
    doc = json.loads(raw)
    assert digest == info.digest
    assert anon.image_size(base) == doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])

    creds = Credentials(auth_registry.username, auth_registry.password)
    authed = RegistryClient(lambda host: creds if host == auth_registry.address else None)
    dst = ImageRef.parse(f"{auth_registry.address}/copied/debian:1")
    assert authed.copy(base, dst) == info.digest  # across registries: blobs streamed
    same = ImageRef.parse(f"{auth_registry.address}/mounted/debian:1")
    assert authed.copy(dst, same) == info.digest  # same registry: blobs mounted
    found = authed.head_manifest(same)
    assert found is not None and found.digest == info.digest

    wrong = RegistryClient(lambda host: Credentials(auth_registry.username, "wrong-password"))
    with pytest.raises(RegistryError, match="refused the credentials") as err:
        wrong.head_manifest(dst)
    assert "wrong-password" not in str(err.value) and auth_registry.password not in str(err.value)
    with pytest.raises(RegistryError, match="needs credentials"):
        RegistryClient().head_manifest(dst)


def test_a_blob_redirected_to_storage_is_followed_without_credentials() -> None:
    """Docker Hub, GHCR, ECR and distribution on S3 answer a blob GET with a redirect to a
    pre-signed storage URL: followed (a few hops at most), without the registry's header."""
    import hashlib
    import http.server
    import threading

    from layerkit.build.registry import ImageRef, RegistryClient

    data = b'{"architecture": "amd64"}'
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # "format": the stdlib signature
            pass

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            if self.path == f"/v2/r/blobs/{digest}":
                self.send_response(307)
                self.send_header("Location", "/storage/blob?X-Sig=abc")
                self.end_headers()
            elif self.path == "/storage/blob?X-Sig=abc":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:  # /v2/r/blobs/loop: redirects to itself
                self.send_response(302)
                self.send_header("Location", self.path)
                self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ref = ImageRef(f"localhost:{server.server_address[1]}", "r", "t", None)
        assert RegistryClient().config_blob(ref, digest) == data
        assert seen[-1] == ("/storage/blob?X-Sig=abc", None)
        with pytest.raises(RegistryError, match="HTTP 302"):
            RegistryClient().open_blob(ref, "sha256:" + "0" * 64).close()
    finally:
        server.shutdown()
        server.server_close()
