"""Client TLS for tcp:// BuildKit daemons (buildkitd started with --tlscacert/--tlscert/--tlskey)."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.errors import DaemonError, SpecError

if TYPE_CHECKING:
    import grpc  # imported where a channel is made: a build that finds its image needs none

# What an HTTP/2 client sends first: the connection preface and an empty SETTINGS frame.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"

TLS_ENV = {
    "ca": "LAYERKIT_TLS_CA",
    "cert": "LAYERKIT_TLS_CERT",
    "key": "LAYERKIT_TLS_KEY",
    "server_name": "LAYERKIT_TLS_SERVER_NAME",
}


@dataclass(frozen=True)
class TLSConfig:
    """Client TLS for ``tcp://`` buildkitd, as buildctl's --tlscacert/--tlscert/--tlskey/--tlsservername.

    ``ca`` verifies the daemon (default: the system store); ``cert`` + ``key`` are the client
    identity for daemons that require mutual TLS; ``server_name`` overrides the name checked
    against the daemon's certificate (default: the address's host).
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    # Given as options (an error on a non-tcp address) rather than only inherited from
    # LAYERKIT_TLS_* (which apply to tcp:// daemons and are ignored for the others).
    explicit: bool = True

    @classmethod
    def from_options(
        cls,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        server_name: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> TLSConfig | None:
        """Options win over LAYERKIT_TLS_* variables; None when neither sets anything."""
        env = os.environ if environ is None else environ
        given = {"ca": ca, "cert": cert, "key": key, "server_name": server_name}
        vals = {k: v or env.get(TLS_ENV[k]) or None for k, v in given.items()}
        if not any(vals.values()):
            return None
        if bool(vals["cert"]) != bool(vals["key"]):
            raise SpecError("TLS: a client certificate and its key go together (--tls-cert with --tls-key)")
        path = {k: Path(v) if v and k != "server_name" else None for k, v in vals.items()}
        explicit = any(given.values())
        return cls(path["ca"], path["cert"], path["key"], vals["server_name"], explicit)

    def _read(self, path: Path | None, what: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SpecError(f"TLS {what} {path}: {exc.strerror or exc}") from None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self._read(self.ca, "CA file"),
            private_key=self._read(self.key, "key file"),
            certificate_chain=self._read(self.cert, "certificate file"),
        )

    def probe(self, sock: socket.socket, host: str, what: str, timeout: float) -> None:
        """One TLS handshake on ``sock`` (connected, closed here) before gRPC: a bad CA, name
        or client certificate is reported at once with OpenSSL's reason, where grpc would
        only retry until its deadline. ``timeout`` bounds the wait for the daemon's answer."""
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert and self.key:
                ctx.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise SpecError(f"TLS files for {what} are unusable: {exc}") from None
        ctx.set_alpn_protocols(["h2"])
        sock.settimeout(timeout)  # connected: the handshake's answer gets the whole budget
        try:
            with ctx.wrap_socket(sock, server_hostname=self.server_name or host) as tls:
                # With TLS 1.3 the server judges our certificate after the handshake. So speak
                # first and wait for the verdict itself, however slow the machine: a gRPC server
                # that accepted us answers the HTTP/2 preface with its SETTINGS; a refusal is an
                # alert or a closed connection. No answer within `timeout`: grpc's wait decides.
                closed = False
                try:
                    tls.sendall(_H2_PREFACE)
                    closed = tls.recv(1) == b""
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                except TimeoutError:
                    pass
                if closed:
                    raise DaemonError(
                        f"TLS handshake with {what} failed: the daemon closed the connection after the "
                        "handshake; it probably requires a client certificate (--tls-cert/--tls-key) "
                        "signed by a CA it trusts (check --tls-ca, --tls-cert/--tls-key and --tls-server-name)"
                    )
        except ssl.SSLError as exc:
            verify = getattr(exc, "verify_message", None)
            reason = f"certificate verify failed: {verify}" if verify else exc.reason or str(exc)
            raise DaemonError(
                f"TLS handshake with {what} failed: {reason} "
                "(check --tls-ca, --tls-cert/--tls-key and --tls-server-name)"
            ) from None
        except OSError as exc:
            raise DaemonError(f"TLS handshake with {what} failed: {exc.strerror or exc}") from None
        finally:
            sock.close()
