"""A local deployment on the Docker engine (`layerkit serve`): the inference image run as a
container, its keys folder mounted read-only, published on 127.0.0.1 only.

The container is named `layerkit-serve-NAME` and labelled `io.layerkit.serve=NAME`, which is
how `--stop`, `--logs` and `regen-key` find it (one per deployment: serving again replaces it).
A container that exits before it is ready is kept, stopped, so that `--logs` can show why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from layerkit.deploy import readiness
from layerkit.errors import DaemonError, EnvironmentFailure, SpecError
from layerkit.render.inference import ENTRYPOINT, KEYS_DIR

LABEL = "io.layerkit.serve"
# The containers' own bridge network (as compose makes one per project): published ports work
# on it also where the engine runs without its default bridge (`dockerd --bridge=none`, as
# layerkit's CI and some rootless setups do), and served models do not share a network with
# the user's other containers.
NETWORK = "layerkit-serve"
# Where --source is mounted: beside the image's /var/azureml-app, not over it (the models sit
# below that). AML_APP_ROOT names it too: the server puts the app root first on sys.path, so
# the image's copies of the user's helper modules would otherwise shadow the mounted ones.
SOURCE_DIR = "/var/layerkit/source"
LOG_TAIL = 30  # lines of the container's log shown when it fails to start
ERROR_SCAN = 400  # lines of each stream searched for what init() raised
LOOPBACK = "127.0.0.1"
RELOAD_TIMEOUT = 60.0  # nginx switches workers in milliseconds; this bounds only a stuck one


class ServeFailed(EnvironmentFailure):
    """The server did not become ready; ``logs``: the tail of its log, printed above the error."""

    def __init__(self, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.logs = logs


@dataclass(frozen=True)
class Deployment:
    """What `serve` asks the engine for, decided before any call."""

    name: str
    image: str
    port: int  # the image's port (serve.port)
    host_port: int  # on 127.0.0.1; 0: one the engine picks
    readiness_route: str
    scoring_route: str
    keys: Path | None  # the host's keys folder; None: auth is off
    probe_key: str | None = None  # sent with the readiness polls
    source: Path | None = None  # served instead of the image's source tree
    entry_script: str = "score.py"  # relative to the source tree (serve.entry_script)
    gpu: int = 0
    bind: str = LOOPBACK


@dataclass(frozen=True)
class Running:
    container: str
    host_port: int
    scoring_url: str


def container_name(name: str) -> str:
    return f"layerkit-serve-{name}"


@dataclass(frozen=True)
class ContainerSpec:
    """The container `serve` creates (docker-py's create_container/create_host_config terms)."""

    name: str
    labels: dict[str, str]
    environment: tuple[str, ...]
    mounts: tuple[Any, ...]  # docker.types.Mount
    network: str
    port_bindings: dict[int, tuple[str, int | None]]  # container port -> (address, host port)
    device_requests: tuple[Any, ...]  # docker.types.DeviceRequest
    working_dir: str | None = None  # None: the image's WORKDIR


def container_spec(d: Deployment) -> ContainerSpec:
    from docker.types import DeviceRequest, Mount

    mounts = []
    env: list[str] = []
    if d.keys is not None:
        mounts.append(Mount(KEYS_DIR, str(d.keys), type="bind", read_only=True))
    if d.source is not None:
        source = d.source.resolve()
        if not source.is_dir():
            raise SpecError(f"--source {d.source}: not a directory")
        if not (source / d.entry_script).is_file():
            raise SpecError(f"--source {d.source}: no entry script {d.entry_script} in it")
        mounts.append(Mount(SOURCE_DIR, str(source), type="bind", read_only=True))
        # The image names both (render/inference.py); the server reads the script by its path.
        env += [
            f"AML_APP_ROOT={SOURCE_DIR}",
            f"AZUREML_SOURCE_DIRECTORY={SOURCE_DIR}",
            f"AZUREML_ENTRY_SCRIPT={SOURCE_DIR}/{d.entry_script}",
        ]
    return ContainerSpec(
        name=container_name(d.name),
        labels={LABEL: d.name},
        environment=tuple(env),
        network=NETWORK,
        mounts=tuple(mounts),
        port_bindings={d.port: (d.bind, d.host_port or None)},
        device_requests=(DeviceRequest(count=d.gpu, capabilities=[["gpu"]]),) if d.gpu else (),
        working_dir=SOURCE_DIR if d.source is not None else None,
    )


class LocalEngine:
    def __init__(self, docker_host: str) -> None:
        from layerkit.build.runner import engine_client

        self.docker_host = docker_host
        self._api = engine_client(docker_host)

    def close(self) -> None:
        self._api.close()

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        import docker

        try:
            return fn(*args, **kw)
        except docker.errors.DockerException as exc:
            raise self._failed_call(what, exc) from None

    def _failed_call(self, what: str, exc: Exception) -> DaemonError:
        from layerkit.build.runner import explain

        return DaemonError(f"Docker engine at {self.docker_host}: {what}: {explain(exc)}")

    def containers(self, name: str) -> list[str]:
        found = self._call(
            "listing containers", self._api.containers, all=True, filters={"label": f"{LABEL}={name}"}
        )
        return [str(c["Id"]) for c in found]

    def remove(self, name: str) -> int:
        """Stop and remove the deployment's containers; how many there were."""
        ids = self.containers(name)
        for cid in ids:
            self._call("removing the container", self._api.remove_container, cid, force=True)
        return len(ids)

    def drop_network(self) -> bool:
        """Remove the bridge network once no deployment's container is left (as `compose down`
        does): a network left behind keeps its host bridge and one of the engine's few address
        pools. Another `serve` starting at once may take it back: then it stays."""
        import docker

        left = self._call("listing containers", self._api.containers, all=True, filters={"label": LABEL})
        if left:
            return False
        try:
            if LABEL not in (self._api.inspect_network(NETWORK).get("Labels") or {}):
                return False  # a network of that name the user made: not ours to remove
            self._api.remove_network(NETWORK)
        except docker.errors.APIError as exc:
            if exc.status_code in (403, 404, 409):  # gone already, or in use again (active endpoints)
                return False
            raise self._failed_call(f"removing network {NETWORK}", exc) from None
        return True

    def start(self, d: Deployment, timeout: float) -> Running:
        """Replace any container of the deployment with a new one and wait until it is ready."""
        import docker

        c = container_spec(d)
        self.remove(d.name)
        try:
            self._api.inspect_image(d.image)
        except docker.errors.ImageNotFound:
            from layerkit.spec.imageref import split_ref

            repo, tag, digest = split_ref(d.image)
            self._call(f"pulling {d.image}", self._api.pull, repo, tag=digest or tag)
        cid = self._launch(d, c)
        port = self._host_port(cid, d.port)
        outcome = readiness.wait(
            lambda: readiness.http_status(port, d.readiness_route, d.probe_key),
            lambda: self.exit_code(cid),
            timeout=timeout,
        )
        if outcome.state == "ready":
            return Running(cid, port, f"http://{d.bind}:{port}{d.scoring_route}")
        if outcome.state == "timeout":
            with contextlib.suppress(docker.errors.DockerException):
                self._api.stop(cid, timeout=5)
        raise self._failed(d, cid, outcome, timeout)

    def _launch(self, d: Deployment, c: ContainerSpec) -> str:
        """Create and start the container on the network; its id. A `--stop` of the last other
        deployment removes the network if it finds no container (this one has no endpoint until
        it starts): then the network is made again and the launch repeated, once."""
        import docker

        host = self._call(
            "configuring the container",
            self._api.create_host_config,
            mounts=list(c.mounts),
            port_bindings=c.port_bindings,
            device_requests=list(c.device_requests) or None,
            network_mode=c.network,
        )
        for again in (True, False):
            self._network(c.network)
            what, cid = f"creating a container of {d.image}", ""
            try:
                created = self._api.create_container(
                    d.image, name=c.name, labels=c.labels, ports=list(c.port_bindings),
                    environment=list(c.environment), working_dir=c.working_dir, host_config=host,
                )  # fmt: skip
                cid, what = str(created["Id"]), "starting the container"
                self._api.start(cid)
                return cid
            except docker.errors.DockerException as exc:
                gone = isinstance(exc, docker.errors.NotFound) and "network" in str(exc).lower()
                if cid:
                    with contextlib.suppress(docker.errors.DockerException):
                        self._api.remove_container(cid, force=True)
                if not (gone and again):
                    raise self._failed_call(what, exc) from None
        raise AssertionError("unreachable: the second launch returns or raises")

    def _network(self, name: str) -> None:
        """The bridge network, made on first use; another `serve` making it at once is fine."""
        import docker

        found = self._call("listing networks", self._api.networks, names=[name])
        if any(n.get("Name") == name for n in found):  # the filter matches parts of names too
            return
        try:
            self._api.create_network(name, driver="bridge", labels={LABEL: ""})
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: it exists now
                raise self._failed_call(f"creating network {name}", exc) from None

    def _failed(self, d: Deployment, cid: str, outcome: readiness.Outcome, timeout: float) -> ServeFailed:
        stdout, stderr = self.logs(cid)
        tail = readiness.failure_tail(stdout, stderr, LOG_TAIL)
        see = f"`layerkit serve --logs SPEC` shows all of its log; `--stop` removes it ({container_name(d.name)})"
        if outcome.state == "exited":
            raised = readiness.raised(stdout + "\n" + stderr)
            # What init() raised, when the log shows a Python error; else the log's last line
            # (nginx refusing its config, a missing key file...).
            why = f"init() of the entry script raised {raised}" if raised else readiness.last_line(stderr)
            return ServeFailed(
                f"the server exited ({outcome.exit_code}) before {d.readiness_route} was ready: "
                f"{why or 'it logged nothing'}; {see}",
                tail,
            )
        last = f" (last answer: HTTP {outcome.last_status})" if outcome.last_status else ""
        return ServeFailed(
            f"the server was not ready on {d.readiness_route} within {timeout:g}s{last}; "
            f"it was stopped; raise --timeout if init() is slow; {see}",
            tail,
        )

    def _host_port(self, cid: str, port: int) -> int:
        info = self._call("inspecting the container", self._api.inspect_container, cid)
        bound = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []
        if not bound:  # it exited at once, before the engine published the port
            return 0
        return int(bound[0]["HostPort"])

    def exit_code(self, cid: str) -> int | None:
        state = self._call("inspecting the container", self._api.inspect_container, cid)["State"]
        return None if state.get("Running") or state.get("Restarting") else int(state.get("ExitCode") or 0)

    def logs(self, cid: str) -> tuple[str, str]:
        """The end of the container's stdout and of its stderr."""

        def read(stdout: bool) -> str:
            raw = self._call(
                "reading the log", self._api.logs, cid, stdout=stdout, stderr=not stdout, tail=ERROR_SCAN
            )
            return bytes(raw).decode("utf-8", "replace")

        return read(True), read(False)

    def write_logs(self, name: str, out: IO[bytes], err: IO[bytes]) -> None:
        """The deployment's log: the container's stdout to ``out``, its stderr to ``err``."""
        ids = self.containers(name)
        if not ids:
            raise EnvironmentFailure(
                f"no local deployment '{name}' on {self.docker_host}: `layerkit serve SPEC` starts one"
            )
        for to, stdout in ((out, True), (err, False)):
            to.write(
                bytes(self._call("reading the log", self._api.logs, ids[0], stdout=stdout, stderr=not stdout))
            )
            to.flush()

    def reload(self, name: str, took_effect: Callable[[int], bool], timeout: float = RELOAD_TIMEOUT) -> bool:
        """Make a running deployment re-read its keys; False when none runs. Returns once
        nginx's old workers (with the old keys) are gone and ``took_effect(host_port)``: nginx
        reloads on a signal, so its old worker may still answer after `reload` returns."""
        running = [cid for cid in self.containers(name) if self.exit_code(cid) is None]
        for cid in running:
            self._reload(cid, name, took_effect, timeout)
        return bool(running)

    def _reload(self, cid: str, name: str, took_effect: Callable[[int], bool], timeout: float) -> None:
        old_workers = self._nginx_workers(cid)
        ex = self._call("reloading the keys", self._api.exec_create, cid, [ENTRYPOINT, "reload"])
        output = self._call("reloading the keys", self._api.exec_start, ex["Id"])
        code = self._call("reloading the keys", self._api.exec_inspect, ex["Id"])["ExitCode"]
        if code != 0:
            text = bytes(output).decode("utf-8", "replace")
            raise ServeFailed(f"`{ENTRYPOINT} reload` exited {code} in {container_name(name)}", text)
        port = self._published_port(cid)

        def switched() -> bool:
            workers = self._nginx_workers(cid)
            return bool(workers) and not workers & old_workers and (not port or took_effect(port))

        if not readiness.until(switched, timeout=timeout):
            raise ServeFailed(
                f"{container_name(name)} still answered with the old keys {timeout:g}s after reloading them; "
                "`layerkit serve --logs SPEC`"
            )

    def _nginx_workers(self, cid: str) -> set[str]:
        """PIDs of nginx's worker processes in the container (`docker top`)."""
        top = self._call("listing the container's processes", self._api.top, cid)
        titles = list(top.get("Titles") or [])
        pid, cmd = titles.index("PID"), titles.index("CMD") if "CMD" in titles else len(titles) - 1
        return {str(p[pid]) for p in top.get("Processes") or [] if "nginx: worker process" in str(p[cmd])}

    def _published_port(self, cid: str) -> int:
        info = self._call("inspecting the container", self._api.inspect_container, cid)
        for bound in ((info.get("NetworkSettings") or {}).get("Ports") or {}).values():
            if bound:
                return int(bound[0]["HostPort"])
        return 0
