"""The build context of one ``layerkit build``: inline LLB when small, FileSync when not.

Inline contexts ride inside the Solve request, which dockerd caps at 4 MiB per gRPC
message; larger ones are written to a private folder and served through the session's
FileSync. The session is opened either way: it also answers BuildKit's registry
credential requests and build-secret requests, so secrets never travel in the request itself.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from layerkit.build._proto import buildkit_ops_pb2 as pb
    from layerkit.build.client import BuildkitClient
    from layerkit.build.credentials import Credentials
    from layerkit.build.session import Session

# Headroom below the 4 MiB message cap for the request's other fields and LLB framing.
INLINE_CONTEXT_MAX = 3 * 1024 * 1024


class BuildContext:
    def __init__(
        self,
        client: BuildkitClient,
        files: Mapping[str, str | bytes],
        credentials: Callable[[str], Credentials | None] | None = None,
        *,
        secrets: Mapping[str, bytes] | None = None,
        inline_max: int | None = None,
        modes: Mapping[str, int] | None = None,
    ) -> None:
        self._client = client
        self._files = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
        self._credentials = credentials
        self._secrets = dict(secrets or {})
        limit = INLINE_CONTEXT_MAX if inline_max is None else inline_max
        # Files with their own modes (a base Dockerfile's context) go through FileSync, which
        # sends each file's mode; inline LLB writes every file 0644.
        self._modes = dict(modes or {})
        self.inline = not self._modes and sum(len(v) for v in self._files.values()) <= limit
        self.inputs: dict[str, pb.Definition] | None = None
        self.session_id = ""
        self._dir: Path | None = None
        self._session: Session | None = None

    def _auth(self, host: str) -> tuple[str, str] | None:
        found = self._credentials(host) if self._credentials else None
        return (found.username, found.password) if found else None

    def __enter__(self) -> BuildContext:
        from layerkit.build.session import Session

        local_dirs: dict[str, Path] = {}
        if self.inline:
            from layerkit.build.llb import dockerfile_inputs

            rest = {k: v for k, v in self._files.items() if k != "Dockerfile"}
            self.inputs = dockerfile_inputs(self._files["Dockerfile"].decode(), rest)
        else:
            self._dir = Path(tempfile.mkdtemp(prefix="layerkit-context-"))
            for name, data in self._files.items():
                path = self._dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                path.chmod(self._modes.get(name, 0o644))
            # COPY keeps folder modes: one made 0700 under umask 077 would lock the image's uid out.
            for name in self._files:
                for folder in (self._dir / name).parents:
                    if folder == self._dir:
                        break
                    folder.chmod(0o755)
            local_dirs = {"context": self._dir, "dockerfile": self._dir}
        self._session = Session(
            self._client, local_dirs=local_dirs, credentials=self._auth, secrets=self._secrets
        )
        try:
            self._session.__enter__()
        except BaseException:
            self._cleanup()
            raise
        self.session_id = self._session.id
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._session is not None:
                self._session.__exit__(*exc)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
