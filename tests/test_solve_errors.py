"""How a failed solve is explained (pure logic; test_faults.py makes these faults for real)."""

from __future__ import annotations

import grpc
import pytest

from layerkit.build.client import SolveResult, VertexState, _solve_error
from layerkit.build.transport import BuildkitAddress
from layerkit.errors import EXIT_ENVIRONMENT

ADDR = BuildkitAddress("docker", "unix:///tmp/d/docker.sock")
CACHE_IMPORT = "importing cache manifest from localhost:5000/t/x-cache:abc"


class _RpcError(grpc.RpcError):
    """What grpc raises for a failed call: a status code and its details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _result(*vertexes: tuple[str, str]) -> SolveResult:
    res = SolveResult(ref="r", exporter_response={})
    for i, (name, error) in enumerate(vertexes):
        res.vertexes[f"sha256:{i}"] = VertexState(f"sha256:{i}", name, False, True, True, error)
    res.logs["sha256:1"] = bytearray(b"step output\n")
    return res


def test_a_cold_cache_import_is_never_the_cause() -> None:
    # BuildKit marks the import of a cache nobody exported yet as an errored step and builds on.
    res = _result((CACHE_IMPORT, "not found"), ("[env 5/5] RUN install", "exit code: 1"))
    err = _solve_error(_RpcError(grpc.StatusCode.UNKNOWN, "process failed"), res, ADDR)
    assert err.message == "BuildKit step '[env 5/5] RUN install' failed: exit code: 1"
    assert err.logs == "step output\n"
    only_import = _solve_error(_RpcError(grpc.StatusCode.UNKNOWN, "boom"), _result((CACHE_IMPORT, "x")), ADDR)
    assert only_import.message == "BuildKit solve failed: UNKNOWN: boom"


def test_a_lost_daemon_is_named_not_a_stale_step_error() -> None:
    res = _result((CACHE_IMPORT, "not found"))
    err = _solve_error(_RpcError(grpc.StatusCode.UNAVAILABLE, "Stream removed\n(Socket closed)"), res, ADDR)
    assert err.exit_code == EXIT_ENVIRONMENT
    assert err.message.startswith(
        f"lost BuildKit at {ADDR} during the build (UNAVAILABLE: Stream removed (Socket"
    ), err


@pytest.mark.parametrize("step", ["exporting to image", "exporting cache to registry"])
def test_a_failed_push_says_nothing_half_pushed_is_used(step: str) -> None:
    why = "error writing layer blob:\nconnection reset by peer"
    err = _solve_error(_RpcError(grpc.StatusCode.UNKNOWN, why), _result(("x", ""), (step, why)), ADDR)
    assert "\n" not in err.message  # stderr ends with this one line
    assert err.message == (
        f"BuildKit step {step!r} failed: error writing layer blob: connection reset by peer; "
        "no half-pushed image or cache is used later: building again pushes it"
    )
