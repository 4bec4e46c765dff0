"""Minimal LLB graph builder: just enough ops to feed BuildKit without a Go toolchain.

An LLB ``Definition`` is a list of serialized ``pb.Op`` messages; each vertex is
named by ``sha256:<hex>`` of its own bytes and edges point at those digests. The
last entry is a body-less "return" op whose only input is the result. Digests
are BuildKit's cache keys' roots, so serialization must be deterministic (sorted
map keys): the same graph must always produce the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from layerkit.build._proto import buildkit_ops_pb2 as pb

# Capabilities BuildKit checks against the worker before solving (solver/pb/caps.go).
CAP_FILE_BASE = "file.base"
# BuildKit's "unset" sentinels: -1 = scratch input / no output / keep mtime.
NO_INPUT = -1
NO_TIME = -1


@dataclass(frozen=True)
class Output:
    """One output of a vertex: what later ops consume as an input."""

    digest: str
    index: int = 0


class DefinitionBuilder:
    """Accumulates ops (deduplicated by digest) and emits a ``pb.Definition``."""

    def __init__(self) -> None:
        self._ops: dict[str, bytes] = {}
        self._meta: dict[str, pb.OpMetadata] = {}

    def add(self, op: pb.Op, *, name: str = "", caps: tuple[str, ...] = ()) -> Output:
        data = op.SerializeToString(deterministic=True)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest not in self._ops:
            self._ops[digest] = data
            meta = pb.OpMetadata(caps=dict.fromkeys(caps, True))
            if name:
                # llb.customname is what progress output shows for the vertex.
                meta.description["llb.customname"] = name
            self._meta[digest] = meta
        return Output(digest)

    def files(self, files: Mapping[str, bytes], *, name: str = "") -> Output:
        """Write ``files`` (absolute paths, mode 0644) on scratch, in one FileOp.

        Parent directories are created first (mkdir -p), as COPY would; actions
        chain: action i reads the output of action i-1 via index i-1.
        """
        dirs = sorted({p.rsplit("/", 1)[0] for p in files if p.count("/") > 1})
        actions: list[pb.FileAction] = []
        for path in dirs:
            actions.append(
                pb.FileAction(
                    mkdir=pb.FileActionMkDir(path=path, mode=0o755, makeParents=True, timestamp=NO_TIME)
                )
            )
        for path, data in sorted(files.items()):
            if not path.startswith("/"):
                raise ValueError(f"LLB file path must be absolute: {path!r}")
            actions.append(
                pb.FileAction(mkfile=pb.FileActionMkFile(path=path, mode=0o644, data=data, timestamp=NO_TIME))
            )
        if not actions:
            raise ValueError("files(): nothing to write")
        for i, action in enumerate(actions):
            action.input = NO_INPUT if i == 0 else i - 1
            action.secondaryInput = NO_INPUT
            # Only the last action's result is exposed as output 0.
            action.output = 0 if i == len(actions) - 1 else NO_INPUT
        # No platform: file ops are platform independent (as in BuildKit's own llb).
        op = pb.Op(file=pb.FileOp(actions=actions), constraints=pb.WorkerConstraints())
        return self.add(op, name=name, caps=(CAP_FILE_BASE,))

    def definition(self, result: Output) -> pb.Definition:
        """Serialize everything added so far, returning ``result``."""
        if result.digest not in self._ops:
            raise ValueError(f"{result.digest} was not added to this builder")
        ret = pb.Op(inputs=[pb.Input(digest=result.digest, index=result.index)])
        ret_data = ret.SerializeToString(deterministic=True)
        ret_digest = "sha256:" + hashlib.sha256(ret_data).hexdigest()
        meta = {**self._meta, ret_digest: pb.OpMetadata()}
        defn = pb.Definition(metadata=meta)
        # The field is called `def` (a Python keyword), hence getattr.
        getattr(defn, "def").extend([*self._ops.values(), ret_data])
        return defn


def dockerfile_inputs(
    dockerfile: str, context: Mapping[str, bytes] | None = None
) -> dict[str, pb.Definition]:
    """FrontendInputs for ``dockerfile.v0`` that need no client session.

    The frontend reads "dockerfile" (file named by the ``filename`` attr, default
    Dockerfile) and "context" from LLB inputs instead of syncing local dirs, so a
    build works over a bare gRPC channel.
    """
    df = DefinitionBuilder()
    df_def = df.definition(df.files({"/Dockerfile": dockerfile.encode()}, name="[internal] Dockerfile"))
    ctx = DefinitionBuilder()
    ctx_files = {"/" + k.lstrip("/"): v for k, v in (context or {}).items()}
    # An empty context still needs a vertex; a .dockerignore placeholder is harmless.
    ctx_def = ctx.definition(ctx.files(ctx_files or {"/.dockerignore": b""}, name="[internal] context"))
    return {"dockerfile": df_def, "context": ctx_def}
