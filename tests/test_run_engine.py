"""`layerkit run` without an engine at hand: what it asks the engine for (a fake one), and the
one-line errors for a missing daemon (issue 12 §3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit.build.runner import RunOptions, run_in_image
from layerkit.errors import EXIT_ENVIRONMENT, DaemonError


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "layerkit.yaml"
    spec.write_text("name: r\nbase: {image: 'localhost:5000/debian:bookworm'}\nuser_managed: true\n")
    return spec


def _says_how_to_name_an_engine(message: str) -> None:
    assert "--addr" in message and "DOCKER_HOST" in message, message
    assert "\n" not in message.strip() and "Traceback" not in message


def test_no_daemon_for_run_names_addr_and_docker_host(tmp_path: Path) -> None:
    # Today: `Docker engine at unix:///...: Error while fetching server API version ...`
    host = f"unix://{tmp_path}/no-such-docker.sock"
    opts = RunOptions(command=("true",), source=tmp_path)
    with pytest.raises(DaemonError) as info:
        run_in_image(host, "example/x:1", opts, workdir="/app", gpu=False, credentials=lambda _: None)
    assert info.value.exit_code == EXIT_ENVIRONMENT
    assert str(info.value).startswith(f"cannot reach the Docker engine at {host}")
    _says_how_to_name_an_engine(str(info.value))


@pytest.mark.parametrize("command", ["build", "run"])
def test_no_daemon_for_build_and_run_names_addr_and_docker_host(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.delenv("BUILDKIT_HOST", raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    tail = ["--", "true"] if command == "run" else []
    r = cli(command, _spec(tmp_path), "--progress", "quiet", *tail)
    assert r.code == EXIT_ENVIRONMENT, r.err
    assert "no-such-docker.sock" in r.err
    _says_how_to_name_an_engine(r.err)


def test_no_daemon_at_an_addr_names_addr_and_docker_host(cli, tmp_path: Path) -> None:
    addr = f"docker://unix://{tmp_path}/no-such-docker.sock"
    r = cli("build", _spec(tmp_path), "--addr", addr, "--progress", "quiet")
    assert r.code == EXIT_ENVIRONMENT, r.err
    _says_how_to_name_an_engine(r.err)
