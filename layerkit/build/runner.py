"""`layerkit run`: a command in the environment's image, the source directory mounted.

The source directory is bind-mounted read-write (outputs land beside the code); what its
ignore file (.layerkitignore, else .dockerignore; .dockerignore syntax) excludes is masked
inside the container: an ignored directory by an empty tmpfs, an ignored file by /dev/null.
Output streams as it comes; the command's exit code is returned. The container is removed
afterwards, also on Ctrl-C (which stops it first).

It runs as the invoking user's uid:gid (so it can write into the mounted source, as a dev loop
expects), not the image's USER, unless `--user` names another. The spec's runtime.shm_size is
the container's /dev/shm size; a user-managed image's runtime.python replaces a leading
`python`/`python3` of the command, as the hosted platform runs its interpreterPath.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from layerkit.errors import DaemonError, SpecError
from layerkit.ignorefiles import PatternMatcher

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions
    from layerkit.build.credentials import Credentials
    from layerkit.pipeline import Rendered

RunNetwork = Literal["default", "host", "none"]
IGNORE_FILES = (".layerkitignore", ".dockerignore")
PYTHON_NAMES = ("python", "python3")  # what runtime.python replaces at the head of a command
MAX_MASKS = 256  # each is a mount; beyond this, ignore whole directories instead


@dataclass(frozen=True)
class RunOptions:
    command: tuple[str, ...]
    source: Path = field(default_factory=Path.cwd)
    mount_at: str | None = None  # default: the spec's runtime.workdir
    env: tuple[tuple[str, str], ...] = ()
    network: RunNetwork = "default"
    user: str | None = None  # default: the invoking user's uid:gid
    shm_size: str | None = None  # default: the spec's runtime.shm_size, else the engine's (64m)


@dataclass(frozen=True)
class ContainerConfig:
    """What `run` asks the engine for, decided before any call (testable without one)."""

    command: tuple[str, ...]
    user: str
    shm_size: str | None


def container_config(
    opts: RunOptions, *, shm_size: str | None = None, python: str | None = None
) -> ContainerConfig:
    """``shm_size`` and ``python``: the spec's runtime.shm_size and runtime.python."""
    command = opts.command
    if python and command and command[0] in PYTHON_NAMES:
        command = (python, *command[1:])
    user = opts.user if opts.user is not None else f"{os.getuid()}:{os.getgid()}"
    return ContainerConfig(command, user, opts.shm_size or shm_size)


def ignore_patterns(source: Path) -> tuple[str | None, list[str]]:
    for name in IGNORE_FILES:
        path = source / name
        if path.is_file():
            try:
                return name, path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise SpecError(f"{path}: cannot read the ignore file ({exc})") from None
    return None, []


def masked_paths(source: Path, patterns: list[str]) -> list[tuple[str, bool]]:
    """(relative path, is_dir) to hide, topmost first: an ignored directory is hidden whole
    unless a `!` rule could re-include something below it."""
    matcher = PatternMatcher(patterns)
    if not matcher.rules:
        return []
    out: list[tuple[str, bool]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        rel = os.path.relpath(dirpath, source)
        rel = "" if rel == "." else rel + "/"
        keep = []
        for d in sorted(dirnames):
            if matcher.matches(rel + d) and not matcher.has_negations:
                out.append((rel + d, True))
            else:
                keep.append(d)
        dirnames[:] = keep
        out += [(rel + f, False) for f in sorted(filenames) if matcher.matches(rel + f)]
        if len(out) > MAX_MASKS:
            raise SpecError(
                f"the ignore file of {source} hides more than {MAX_MASKS} paths one by one; "
                "ignore whole directories (e.g. `data/`) instead"
            )
    return out


def run_rendered(rendered: Rendered, image: str, build: BuildOptions, opts: RunOptions) -> int:
    """Run in ``image`` (built from ``rendered``) on the engine that `build` used, else
    $DOCKER_HOST: the image's workdir, GPUs for GPU specs, the build's registry credentials,
    the spec's runtime.shm_size and runtime.python."""
    from layerkit.build.lookup import credentials_for, layout
    from layerkit.build.transport import parse_address

    host = parse_address(build.addr).engine_host
    return run_in_image(
        host,
        image,
        opts,
        credentials=credentials_for(rendered, layout(rendered, build)),
        **spec_settings(rendered),
    )


def spec_settings(rendered: Rendered) -> dict[str, Any]:
    """What the spec decides about a run: the image's workdir, GPUs (features.gpu or a CUDA
    base), runtime.shm_size and runtime.python."""
    rt = rendered.checked.resolved.spec.runtime
    return {
        "workdir": rendered.plan.workdir,
        "gpu": rendered.checked.cuda is not None,
        "shm_size": rt.shm_size if rt else None,
        "python": rt.python if rt else None,
    }


def run_in_image(
    docker_host: str,
    image: str,
    opts: RunOptions,
    *,
    workdir: str,
    gpu: bool,
    credentials: Callable[[str], Credentials | None],
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    shm_size: str | None = None,
    python: str | None = None,
) -> int:
    import docker
    from docker.types import DeviceRequest, Mount

    from layerkit.spec.imageref import ImageRef, split_ref

    source = opts.source.resolve()
    if not source.is_dir():
        raise SpecError(f"source directory {source} does not exist")
    target = opts.mount_at or workdir
    if not target.startswith("/"):
        raise SpecError(f"--mount-at {target!r}: must be an absolute path in the container")
    _, patterns = ignore_patterns(source)
    mounts = [Mount(target, str(source), type="bind")]
    for rel, is_dir in masked_paths(source, patterns):
        path = f"{target.rstrip('/')}/{rel}"
        mounts.append(
            Mount(path, None, type="tmpfs")
            if is_dir
            else Mount(path, "/dev/null", type="bind", read_only=True)
        )
    config = container_config(opts, shm_size=shm_size, python=python)
    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr.buffer
    api = engine_client(docker_host)
    try:
        if not _has_image(api, image):
            name, tag, digest = split_ref(image)
            creds = credentials(ImageRef.parse(image).registry)
            auth = {"username": creds.username, "password": creds.password} if creds else None
            api.pull(name, tag=digest or tag, auth_config=auth)
        host_config = api.create_host_config(
            mounts=mounts,
            network_mode=None if opts.network == "default" else opts.network,
            device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpu else None,
            shm_size=config.shm_size,
        )
        container = api.create_container(
            image,
            command=list(config.command),
            working_dir=target,
            environment=[f"{k}={v}" for k, v in opts.env],
            user=config.user,
            host_config=host_config,
            labels={"io.layerkit.run": "1"},
        )
    except docker.errors.DockerException as exc:
        api.close()
        raise _refused(exc, docker_host, gpu) or DaemonError(
            f"Docker engine at {docker_host}: {explain(exc)}"
        ) from None
    cid = container["Id"]
    try:
        stream = api.attach(cid, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        api.start(cid)
        for chunk_out, chunk_err in stream:
            if chunk_out:
                out.write(chunk_out)
                out.flush()
            if chunk_err:
                err.write(chunk_err)
                err.flush()
        return int(api.wait(cid)["StatusCode"])
    except KeyboardInterrupt:
        api.stop(cid, timeout=5)
        raise
    except docker.errors.DockerException as exc:
        raise _refused(exc, docker_host, gpu) or DaemonError(
            f"running in {image} failed: {explain(exc)}"
        ) from None
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            api.remove_container(cid, force=True)
        api.close()


def engine_client(docker_host: str) -> Any:
    """A docker APIClient; an engine that does not answer is a DaemonError naming the ways to
    point layerkit at another (docker-py asks for the API version on connect)."""
    import docker

    from layerkit.build.transport import no_engine

    try:
        return docker.APIClient(base_url=docker_host, timeout=600)
    except docker.errors.DockerException as exc:
        raise DaemonError(no_engine(docker_host, explain(exc))) from None


def _has_image(api: object, image: str) -> bool:
    import docker

    try:
        api.inspect_image(image)  # type: ignore[attr-defined]
    except docker.errors.ImageNotFound:
        return False
    return True


def explain(exc: Exception) -> str:
    text = str(exc)
    explanation = getattr(exc, "explanation", None)
    return " ".join((str(explanation) if explanation else text).split())  # one line


def _refused(exc: Exception, docker_host: str, gpu: bool) -> DaemonError | None:
    """A GPU request the engine cannot serve, said plainly: dockerd refuses DeviceRequests with `could not select device
    driver "" with capabilities: [[gpu]]` when no device driver (the NVIDIA Container Toolkit)
    is registered for GPUs."""
    why = explain(exc)
    if not gpu or "could not select device driver" not in why:
        return None
    return DaemonError(
        f"this is a GPU environment, but the Docker engine at {docker_host} has no GPU support "
        f"({why}); run it on a host with NVIDIA GPUs and the NVIDIA Container Toolkit"
    )
