"""GPU specs are right or refused (issue 11, section 4): features.gpu agrees with a named CUDA
base; a CUDA base alone makes a GPU environment (lock __cuda, unlocked solve, `layerkit run`
asks for GPUs); an engine without GPUs is a clear one-line error."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures_build import install_env_module

from layerkit import api
from layerkit.build.runner import RunOptions, run_in_image
from layerkit.errors import EXIT_ENVIRONMENT, DaemonError
from layerkit.lock.solve import lock_inputs
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

CUDA_FLAVOUR = "base: {flavour: cuda12.1-cudnn8-ubuntu22.04}\n"


def checked(text: str) -> Checked:
    return check(resolve(load_text("name: g\n" + text, "spec.yaml")))


@pytest.mark.parametrize(
    ("text", "cuda"),
    [
        (CUDA_FLAVOUR, "12.1"),  # the flavour's toolkit 12.1.1, as a driver reports it
        (CUDA_FLAVOUR + "features: {gpu: {cuda: '12.1'}}\n", "12.1"),
        ("features: {gpu: {cuda: '11.8'}}\n", "11.8"),  # matched to a catalog flavour
        ("base: {image: 'nvidia/cuda:12.1.1-cudnn8-devel-ubuntu22.04'}\n", "12.1"),  # a catalog ref
        ("base: {flavour: cpu-ubuntu22.04}\n", None),
        ("description: cpu\n", None),
    ],
)
def test_the_environment_cuda_comes_from_features_or_the_base(text: str, cuda: str | None) -> None:
    c = checked(text)
    assert c.cuda == cuda
    virtual = lock_inputs(c).virtual
    assert virtual.get("__cuda") == cuda  # what conda-lock is given (--virtual-package-spec)


def test_features_gpu_that_contradicts_the_flavour_names_both_places(cli, tmp_path: Path) -> None:
    spec = tmp_path / "env.yaml"
    spec.write_text(
        "name: g\nbase:\n  flavour: cuda12.1-cudnn8-ubuntu22.04\nfeatures:\n  gpu:\n    cuda: '11.8'\n"
    )
    r = cli("validate", spec)
    assert r.code == 2 and r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{spec}:6:11: error: features.gpu.cuda is 11.8 ")
    assert f"(flavour at {spec}:3:12) has cuda 12.1.1" in lines[0]


@pytest.mark.parametrize("value", ["11.8 && id", "$(id)", "cuda11"])
def test_gpu_versions_are_versions(value: str) -> None:
    with pytest.raises(Exception, match="must be a version"):
        checked(f"base: {{image: 'nvidia/cuda:x'}}\nfeatures: {{gpu: {{cuda: '{value}'}}}}\n")


def _env_stage(dockerfile: str) -> str:
    return dockerfile.split("AS env\n", 1)[1].split("\nFROM ", 1)[0]


def test_an_unlocked_gpu_solve_gets_the_cuda_override_in_the_env_stage_only() -> None:
    r = api.render(checked(CUDA_FLAVOUR + "conda: {dependencies: [numpy=1.26]}\n"), auto_lock=False)
    assert r.plan.env_install is not None and r.plan.env_install.cuda_override == '"12.1"'
    # The solve also gets the base's glibc (Ubuntu 22.04's), not the installer image's.
    assert 'ENV CONDA_OVERRIDE_CUDA="12.1" CONDA_OVERRIDE_GLIBC="2.35"\nRUN ' in _env_stage(r.dockerfile)
    assert r.dockerfile.count("CONDA_OVERRIDE_CUDA") == 1  # not in the final image's config
    cpu = api.render(checked("conda: {dependencies: [numpy=1.26]}\n"), auto_lock=False)
    assert "CONDA_OVERRIDE_CUDA" not in cpu.dockerfile


def test_the_unlocked_hash_names_the_cuda_it_solves_for() -> None:
    gpu = api.hash_spec(checked(CUDA_FLAVOUR + "conda: {dependencies: [numpy=1.26]}\n"), auto_lock=False)
    assert 'CONDA_OVERRIDE_CUDA="12.1"' in gpu.parts["dockerfile"]
    cpu = api.hash_spec(checked("conda: {dependencies: [numpy=1.26]}\n"), auto_lock=False)
    assert "CONDA_OVERRIDE_CUDA" not in cpu.parts["dockerfile"]


@pytest.mark.usefixtures("lock_sandbox")
def test_the_installer_solves_for_cuda_builds_with_the_override(
    channel: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the env stage runs: templates/install_env.py --spec, the local channel's `mlkit`
    has a CPU build and one that needs __cuda >=11.8 (tests/fixtures_channels.py)."""
    import rattler

    rendered = api.render(
        checked(CUDA_FLAVOUR + f"conda:\n  channels: ['{channel[1]}']\n  dependencies: [mlkit]\n")
    )
    env_file = tmp_path / "environment.yml"
    env_file.write_text(rendered.files["environment.yml"])
    e = rendered.plan.env_install
    assert e is not None and e.cuda_override is not None
    install_env = install_env_module()

    def solved_mlkit() -> str:
        records = asyncio.run(install_env._solve(str(env_file), "linux-64"))
        return next(str(r.build) for r in records if str(r.name.normalized) == "mlkit")

    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", json.loads(e.cuda_override))
    assert solved_mlkit() == "cuda_0"
    monkeypatch.delenv("CONDA_OVERRIDE_CUDA")
    host = [str(v.into_generic()) for v in rattler.VirtualPackage.detect()]
    if not any(v.startswith("__cuda=") for v in host):  # a host with a GPU solves for it anyway
        assert solved_mlkit() == "cpu_0"


class _Engine(BaseHTTPRequestHandler):
    """The few Engine API calls `layerkit run` makes, answered as dockerd answers them on a
    host without the NVIDIA Container Toolkit: create succeeds, start refuses the GPU request
    (moby returns 500 with this message from its device-driver lookup)."""

    created: list[dict[str, object]]
    REFUSAL = 'could not select device driver "" with capabilities: [[gpu]]'

    def log_message(self, format: str, *args: object) -> None:  # "format": the stdlib signature
        pass

    def _reply(self, code: int, body: object | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.endswith("/version"):
            self._reply(200, {"ApiVersion": "1.43", "Version": "24.0.0"})
        elif "/containers/" in self.path:  # inspect, for attach's tty check
            self._reply(200, {"Id": "c0ffee", "Config": {"Tty": False}})
        else:  # images/<ref>/json: the image is there
            self._reply(200, {"Id": "sha256:" + "0" * 64})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/containers/create" in self.path:
            self.created.append(json.loads(body))
            self._reply(201, {"Id": "c0ffee", "Warnings": []})
        elif self.path.endswith("/start"):
            self._reply(500, {"message": self.REFUSAL})
        else:  # attach: an empty stream, never read (start fails first)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.raw-stream")
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_DELETE(self) -> None:
        self._reply(204)


@pytest.fixture
def engine() -> Iterator[tuple[str, list[dict[str, object]]]]:
    created: list[dict[str, object]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Engine", (_Engine,), {"created": created}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}", created
    server.shutdown()
    server.server_close()


def _run(host: str, tmp_path: Path, gpu: bool) -> int:
    opts = RunOptions(command=("python", "-c", "1"), source=tmp_path)
    return run_in_image(host, "example/gpu:1", opts, workdir="/app", gpu=gpu, credentials=lambda _: None)


def test_run_asks_for_gpus_and_an_engine_without_them_is_one_clear_line(
    engine: tuple[str, list[dict[str, object]]], tmp_path: Path
) -> None:
    host, created = engine
    with pytest.raises(DaemonError) as info:
        _run(host, tmp_path, gpu=True)
    host_config = created[0]["HostConfig"]
    assert isinstance(host_config, dict)
    # As `docker run --gpus all` asks: every GPU, any driver that has the "gpu" capability.
    (request,) = host_config["DeviceRequests"]
    assert {k: request[k] for k in ("Driver", "Count", "Capabilities")} == {
        "Driver": "",
        "Count": -1,
        "Capabilities": [["gpu"]],
    }
    message = str(info.value)
    assert info.value.exit_code == EXIT_ENVIRONMENT and "\n" not in message
    assert message.startswith(
        f"this is a GPU environment, but the Docker engine at {host} has no GPU support"
    )
    assert _Engine.REFUSAL in message and "NVIDIA Container Toolkit" in message


def test_run_asks_no_gpus_for_a_cpu_environment(
    engine: tuple[str, list[dict[str, object]]], tmp_path: Path
) -> None:
    host, created = engine
    with pytest.raises(DaemonError, match="running in example/gpu:1 failed"):
        _run(host, tmp_path, gpu=False)  # this engine refuses every start
    host_config = created[0]["HostConfig"]
    assert isinstance(host_config, dict) and not host_config.get("DeviceRequests")


def test_run_gives_a_cuda_flavour_gpus_without_features_gpu() -> None:
    assert checked(CUDA_FLAVOUR).cuda is not None  # run_rendered asks for GPUs when this is set
