"""The Docker Engine API side of a build on dockerd: push exported images, inspect local ones.

dockerd's embedded BuildKit has no image exporter with push; the moby exporter writes into
the engine's image store, and the push goes through the Engine API (docker SDK), with
credentials passed per call (never written to a config file or logged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from layerkit.errors import DaemonError, RegistryError
from layerkit.spec.imageref import split_ref

if TYPE_CHECKING:
    from layerkit.build.credentials import Credentials


class Engine:
    def __init__(self, docker_host: str, timeout: float = 600.0) -> None:
        import docker

        from layerkit.build.transport import no_engine

        self.docker_host = docker_host
        try:
            self._api = docker.APIClient(base_url=docker_host, timeout=timeout)
        except docker.errors.DockerException as exc:
            raise DaemonError(no_engine(docker_host, " ".join(str(exc).split()))) from None

    def close(self) -> None:
        self._api.close()

    def image(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect``, or None when the engine has no such image."""
        import docker

        try:
            return dict(self._api.inspect_image(ref))
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as exc:
            raise DaemonError(f"Docker engine at {self.docker_host}: {exc}") from None

    def arch(self) -> str | None:
        """The engine's own architecture (`amd64`, `arm64`: the Engine API's version Arch)."""
        import docker

        try:
            arch = self._api.version().get("Arch")
        except docker.errors.DockerException as exc:
            raise DaemonError(f"Docker engine at {self.docker_host}: {exc}") from None
        return arch if isinstance(arch, str) else None

    def push(self, ref: str, credentials: Credentials | None) -> str | None:
        """Push one tag; layers the registry already has are not sent again. Returns the
        manifest digest the engine pushed (its push's aux record), None when it names none."""
        import docker

        repo, tag, _ = split_ref(ref)
        auth = {"username": credentials.username, "password": credentials.password} if credentials else None
        digest = None
        try:
            for event in self._api.push(repo, tag=tag, auth_config=auth, stream=True, decode=True):
                if "error" in event:
                    detail = str(event.get("error") or "")
                    raise RegistryError(f"push of {ref} failed: {_redact(detail, credentials)}")
                aux = event.get("aux") if isinstance(event, dict) else None
                if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                    digest = aux["Digest"]
        except docker.errors.DockerException as exc:
            raise RegistryError(f"push of {ref} failed: {_redact(str(exc), credentials)}") from None
        return digest

    def prune_builder(self) -> None:
        """Drop every BuildKit cache record of the engine (``docker builder prune -af``)."""
        self._api.prune_builds(all=True)


def _redact(text: str, credentials: Credentials | None) -> str:
    if credentials and credentials.password:
        text = text.replace(credentials.password, "***")
    return text
