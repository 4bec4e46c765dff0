"""The inference image: one more stage on top of the environment image (issue 16 §1).

`FROM runtime AS inference`, so the environment's stages, hash and shared stage images stay
as they are. The stage adds, in the order that keeps layers cached (what changes least first):
the models, each in a layer of its own (COPY) under AZUREML_MODEL_DIR/<name>/<version>/ as
Azure places them; nginx's config (render/nginxconf.py) and layerkit's entrypoint
(templates/layerkit-serve); then the source tree (source_directory, less what its .amlignore,
else .gitignore, else .dockerignore leaves out; never .git, the spec's files or the models)
under /var/azureml-app, where azmlinfsrv reads it. Modes are sent as a+rX: the server runs as
the image's uid, whatever the files' owner on the host.
The server itself is a pip dependency of the environment (`extends: [layerkit:inference]`),
locked or pinned like any other: it is checked for here, never installed by this stage.
"""

from __future__ import annotations

import hashlib
import os
import stat as st
import sys
from dataclasses import dataclass
from pathlib import Path

from layerkit.errors import Position, SpecError
from layerkit.render import nginxconf
from layerkit.render.blocks.dockerfile import (
    Comment,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Instruction,
    Label,
    Stage,
    User,
    Workdir,
)
from layerkit.render.blocks.installer import ENV_PREFIX
from layerkit.render.envvars import quote
from layerkit.render.usercontext import Budget, ContextFile, UserContext, collect, read_file
from layerkit.spec import pip as P
from layerkit.spec.merge import Resolved
from layerkit.spec.serve import ServeSettings, settings
from layerkit.spec.validate import Checked

APP_ROOT = "/var/azureml-app"  # azmlinfsrv's default app root, as on Azure
MODEL_DIR = f"{APP_ROOT}/azureml-models"
KEYS_DIR = "/var/run/layerkit/keys"
ENTRYPOINT = "/usr/local/bin/layerkit-serve"
NGINX_CONF = "/etc/layerkit/nginx.conf"
SERVER = "azureml-inference-server-http"
DEFAULT_VERSION = "1"  # a model without a version: Azure numbers versions from 1
PREFIX = "inference"  # where the stage's files sit in the sent context
# Azure ML's order: its own ignore file, else the project's .gitignore; .dockerignore last.
IGNORE_FILES = (".amlignore", ".gitignore", ".dockerignore")
SERVE_SCRIPT = "layerkit-serve"


@dataclass(frozen=True)
class ServedFiles:
    """One model: its files, sent under `files.prefix` and copied to `dest`."""

    name: str
    version: str
    dest: str
    files: UserContext


@dataclass(frozen=True)
class InferencePlan:
    settings: ServeSettings
    entry_script: str  # absolute, in the image
    python: str  # the interpreter that runs the server
    source: UserContext
    models: tuple[ServedFiles, ...]
    context_files: tuple[tuple[str, str], ...]  # (name in the context, text): nginx.conf, the script
    stage: Stage  # without its label: the hash names the stage, so the label comes last

    def contexts(self) -> tuple[UserContext, ...]:
        return (*(m.files for m in self.models), self.source)


def _folder_of(r: Resolved, key: tuple[str | int, ...]) -> Path:
    """The folder a path of the spec is relative to: that of the layer that set it."""
    loc = r.loc(("serve", *key))
    for layer in r.layers:
        if layer.path is not None and layer.source == loc.file:
            return layer.path.resolve().parent
    root = r.root.path
    if root is None:
        raise SpecError("a spec without a file cannot name serve paths", loc)
    return root.resolve().parent


def _model_files(path: Path, prefix: str, loc: Position, budget: Budget) -> UserContext:
    """A model file, or every file below a model folder, under its own name (as Azure keeps it)."""
    from layerkit.ignorefiles import walk

    if path.is_file():
        entries = [(path.name, path.stat())]
    elif path.is_dir():
        entries = [(f"{path.name}/{rel}", info) for rel, info in walk(path) if not st.S_ISDIR(info.st_mode)]
    else:
        raise SpecError(f"model path {path} is neither a file nor a folder", loc)
    files = []
    for rel, info in entries:
        full = path.parent / rel
        if not st.S_ISREG(info.st_mode):
            raise SpecError(f"{full} in a model is not a regular file (a symlink or device)", loc)
        budget.add(info.st_size, loc)
        body = read_file(full, loc)  # the one reader: a FIFO swapped in after lstat is refused
        budget.add(len(body) - info.st_size, loc)
        files.append(ContextFile(rel, readable(info.st_mode), hashlib.sha256(body).hexdigest()))
    return UserContext(path.parent, tuple(files), prefix)


def readable(mode: int) -> int:
    """a+rX: the server runs as the image's uid, not the file's owner; a 0600 score.py or model
    saved under umask 077 must still be readable there (COPY keeps the sent mode)."""
    bits = st.S_IMODE(mode) & 0o777
    return bits | 0o444 | (0o111 if bits & 0o111 else 0)


def _kept_out(r: Resolved, root: Path, model_paths: list[Path]) -> frozenset[str]:
    """Paths under the source root that never enter the image: .git, the spec's own files
    (its layers and their locks: not the app's, and their edits must not move the hash) and
    the models, which have layers of their own."""
    own: list[Path] = []
    for layer in r.layers:
        if layer.path is not None:
            spec = layer.path.resolve()
            stem = spec.name.rsplit(".", 1)[0] if "." in spec.name else spec.name
            own += [spec, spec.with_name(f"{stem}.conda-lock.yml")]  # pipeline.default_lock_path
    out = {".git"}
    for path in (*own, *model_paths):
        rel = os.path.relpath(path.resolve(), root)
        if rel != "." and not rel.startswith(".."):
            out.add(rel.replace(os.sep, "/"))
    return frozenset(out)


def has_server(checked: Checked) -> bool:
    conda = checked.resolved.spec.conda
    names = {P.project_name(line) for line in (conda.pip or ()) if conda} if conda else set()
    return SERVER in names


def inference_plan(checked: Checked) -> InferencePlan:
    """The inference stage for a checked spec whose environment has the server."""
    from layerkit.resources import data_dir

    r = checked.resolved
    s = settings(r.spec.serve)
    if r.spec.serve is None or s.entry_script is None:
        raise SpecError("an inference image needs serve.entry_script (a score.py with init() and run())",
                        r.loc(("serve",)))  # fmt: skip
    if not has_server(checked):
        raise SpecError(f"the environment has no {SERVER}: add `extends: [layerkit:inference]` (the server "
                        "as a pip dependency, locked like the others)", r.root.loc(()))  # fmt: skip
    source_root = (_folder_of(r, ("source_directory",)) / (s.source_directory or ".")).resolve()
    budget = Budget("the inference image's source tree and models", source_root)
    model_paths = [_folder_of(r, ("models", i, "path")) / m.path for i, m in enumerate(s.models)]
    spec_dir = r.root.path.resolve().parent if r.root.path is not None else None
    if source_root == spec_dir and not any((source_root / n).is_file() for n in IGNORE_FILES):
        print(f"warning: the source directory {source_root} is the spec's folder and has no "
              f"{', '.join(IGNORE_FILES)}: every file in it enters the image", file=sys.stderr)  # fmt: skip
    source = collect(
        source_root, r.loc(("serve", "source_directory")), ignore_files=IGNORE_FILES,
        prefix=f"{PREFIX}/source", what="the source directory",
        skip=_kept_out(r, source_root, model_paths), budget=budget,
    )  # fmt: skip
    source = UserContext(source.root, tuple(ContextFile(f.path, readable(f.mode), f.sha256)
                                            for f in source.files), source.prefix)  # fmt: skip
    if s.entry_script not in {f.path for f in source.files}:
        raise SpecError(f"entry script {s.entry_script} is not in the source directory {source_root} "
                        "(or its ignore file leaves it out)", r.loc(("serve", "entry_script")))  # fmt: skip
    models = []
    for i, m in enumerate(s.models):
        version = m.version or DEFAULT_VERSION
        prefix = f"{PREFIX}/models/{m.name}/{version}"
        files = _model_files(model_paths[i], prefix, r.loc(("serve", "models", i, "path")), budget)
        models.append(ServedFiles(m.name, version, f"{MODEL_DIR}/{m.name}/{version}/", files))
    python = f"{ENV_PREFIX}/bin/python"  # the conda env's, or the venv on the base's Python
    script = (data_dir("templates") / SERVE_SCRIPT).read_text(encoding="utf-8")
    conf = nginxconf.nginx_conf(s)
    entry = f"{APP_ROOT}/{s.entry_script}"
    env = (
        ("AML_APP_ROOT", quote(APP_ROOT)),
        ("AZUREML_ENTRY_SCRIPT", quote(entry)),
        ("AZUREML_MODEL_DIR", quote(MODEL_DIR)),
        ("AZUREML_SOURCE_DIRECTORY", quote(APP_ROOT)),
        ("LAYERKIT_AUTH", quote(s.auth)),
        ("LAYERKIT_KEYS_DIR", quote(KEYS_DIR)),
        ("LAYERKIT_PORT", quote(str(s.port))),
        ("LAYERKIT_SERVE_PYTHON", quote(python)),
        ("LAYERKIT_SERVER_PORT", quote(str(nginxconf.SERVER_PORT))),
        # The server's own scoring timeout (its config reads it); nginx waits as long.
        ("SCORING_TIMEOUT_MS", quote(str(s.scoring_timeout_ms))),
    )
    uid = (r.spec.runtime.uid if r.spec.runtime else None) or 1000
    instructions: tuple[Instruction, ...] = (
        Comment("--- inference: the model server on the environment image (render/inference.py) ---"),
        From("runtime", "inference"),
        *(Copy((f"{m.files.prefix}/",), m.dest) for m in models),
        Copy((f"{PREFIX}/nginx.conf",), NGINX_CONF),
        Copy((f"{PREFIX}/{SERVE_SCRIPT}",), ENTRYPOINT, chmod="0755"),
        Copy((f"{PREFIX}/source/",), f"{APP_ROOT}/"),
        Env(env),
        Workdir(APP_ROOT),
        Expose(s.port),
        User(uid),
        Entrypoint((ENTRYPOINT,)),
    )
    return InferencePlan(
        settings=s,
        entry_script=entry,
        python=python,
        source=source,
        models=tuple(models),
        context_files=((f"{PREFIX}/nginx.conf", conf), (f"{PREFIX}/{SERVE_SCRIPT}", script)),
        stage=Stage(instructions),
    )


def label(inference_hash: str, env_hash: str) -> Label:
    """The last instruction: it names the hash, which the rest of the stage is part of."""
    pairs = (
        ("io.layerkit.inference.env", quote(env_hash)),
        ("io.layerkit.inference.hash", quote(inference_hash)),
    )
    return Label(pairs)
