"""`layerkit serve` end to end on the real engine (issue 16 §2): the inference image built on the
services' Debian base (its own Python, a pip-only environment with azureml-inference-server-http
from the local wheel mirror), served with its keys; requests go through nginx's key check to
the real server, whose score.py loads a model file from AZUREML_MODEL_DIR.

Everything waits on events (the readiness route answering, a process exiting), never on time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures_inference import InferenceSite
from fixtures_services import Services

from layerkit.cli import main
from layerkit.deploy import keys, local
from layerkit.errors import EXIT_ENVIRONMENT

pytestmark = pytest.mark.integration

NAME = "serve-e2e"
SCORE = """\
import json, os

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "answer", "3", "answer.json")) as f:
        model = json.load(f)


def run(raw_data):
    return {"answer": model["answer"], "n": len(json.loads(raw_data)["data"])}
"""
FAILING = "def init():\n    raise RuntimeError('no model here: init-e2e-marker')\n\n\ndef run(raw_data):\n    return 1\n"
MB = 1024 * 1024


@dataclass(frozen=True)
class Served:
    spec: Path
    port: int
    url: str
    addr: str
    docker_host: str
    extra: list[str]  # other deployments the tests started (--name), stopped with this one


def _spec(folder: Path, services: Services, site: InferenceSite) -> Path:
    folder.mkdir(parents=True)
    (folder / "score.py").write_text(SCORE)
    (folder / "model").mkdir()
    (folder / "model" / "answer.json").write_text('{"answer": 42}\n')
    (folder / ".amlignore").write_text("layerkit.yaml\nmodel/\n")
    spec = folder / "layerkit.yaml"
    spec.write_text(
        f"name: {NAME}\nversion: '1'\nextends: [layerkit:inference]\nuser_managed: true\n"
        f"base: {{image: '{site.base_image}'}}\n"
        f"mirrors: {{pypi_index: '{site.pypi_url}'}}\n"
        f"registry: {{address: '{services.registry}', repository: e2e/serve}}\n"
        "serve:\n  entry_script: score.py\n  models:\n    - {name: answer, version: 3, path: model/answer.json}\n"
    )
    return spec


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def served(
    services: Services, inference_site: InferenceSite, state: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    spec = _spec(tmp_path_factory.mktemp("serve") / "app", services, inference_site)
    addr = f"docker://{services.docker_host}"
    cap = _Capture()
    with cap:
        code = main(
            ["serve", str(spec), "--addr", addr, "--network", "host", "--progress", "plain", "--port", "0"]
        )
    assert code == 0, cap.err[-4000:]
    url = cap.out.strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/score"), cap.out
    port = int(url.split(":")[2].split("/")[0])
    try:
        served = Served(spec, port, url, addr, services.docker_host, [])
        yield served
    finally:
        for name in served.extra:
            main(["serve", str(spec), "--name", name, "--stop", "--addr", addr])
        main(["serve", str(spec), "--stop", "--addr", addr])
    # The last --stop takes the bridge network with it: left behind, each one holds a host
    # bridge and one of the engine's address pools (31 of them ran out on a CI machine).
    assert _networks(services.docker_host) == [], "`serve --stop` of the last deployment left its network"


def _networks(docker_host: str) -> list[str]:
    import docker

    api = docker.APIClient(base_url=docker_host)
    try:
        return [n["Name"] for n in api.networks() if n["Name"] == local.NETWORK]
    finally:
        api.close()


class _Capture:
    """stdout/stderr of an in-process CLI call in a module-scoped fixture (no capsys there)."""

    def __enter__(self) -> _Capture:
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


def request(port: int, path: str, *, key: str | None = None, body: bytes | None = None) -> tuple[int, bytes]:
    """An HTTP request to the deployment; a body nginx refuses part-way is not an error here:
    its answer (413) is read after the send stops."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("POST" if body is not None else "GET", path)
        if key is not None:
            conn.putheader("Authorization", f"Bearer {key}")
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            view = memoryview(body)
            try:
                for i in range(0, len(view), MB):
                    conn.send(view[i : i + MB])
            except (BrokenPipeError, ConnectionResetError):
                pass  # nginx answered and closed before the whole body arrived
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def chunked(port: int, path: str, key: str, size: int) -> int:
    """A POST whose body (``size`` bytes) is sent chunked, with no Content-Length: the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Authorization", f"Bearer {key}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = f"{MB:x}\r\n".encode() + b"x" * MB + b"\r\n"
        try:
            for _ in range(size // MB):
                conn.send(chunk)
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # nginx answered and closed before the whole body arrived
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _serve_another(served: Served, name: str, source: Path | None = None) -> int:
    """The module's image served again as ``name`` (found by its hash, not built): its port.
    --stop at the end of the module removes it whatever the test did."""
    argv = ["serve", str(served.spec), "--name", name, "--port", "0", "--addr", served.addr]
    argv += ["--network", "host", "--progress", "quiet", *(["--source", str(source)] if source else [])]
    cap = _Capture()
    with cap:
        code = main(argv)
    assert code == 0, cap.err[-4000:]
    served.extra.append(name)
    return int(cap.out.strip().split(":")[2].split("/")[0])


def _logs(served: Served, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["serve", str(served.spec), "--name", name, "--logs", "--addr", served.addr]) == 0
    logs = capsys.readouterr()
    assert logs.out + logs.err, "the container logged nothing"
    return logs.out + logs.err


def _score(served: Served, key: str | None) -> tuple[int, bytes]:
    return request(served.port, "/score", key=key, body=json.dumps({"data": [[1, 2], [3, 4]]}).encode())


def test_both_keys_score_and_the_model_was_loaded_from_the_model_dir(served: Served) -> None:
    k = keys.read(NAME)
    for key in (k.primary, k.secondary):
        status, body = _score(served, key)
        assert status == 200, body[-2000:]
        assert json.loads(body) == {"answer": 42, "n": 2}


def test_no_key_or_a_wrong_one_is_refused(served: Served) -> None:
    k = keys.read(NAME)
    assert _score(served, None)[0] == 401
    assert _score(served, "wrong-" + k.primary)[0] == 401
    assert _score(served, k.primary[:-1])[0] == 401


def test_the_key_is_compared_with_its_case(served: Served) -> None:
    """nginx's map compares exact strings ignoring case: the keys are regexes that do not."""
    k = keys.read(NAME)
    flipped = k.primary.swapcase()
    assert flipped != k.primary
    assert _score(served, flipped)[0] == 401
    assert _score(served, k.secondary.swapcase())[0] == 401
    assert _score(served, k.primary)[0] == 200


@pytest.mark.parametrize(
    "path", ["//score", "/score/../score", "/SCORE", "/%2Fscore", "/x/../score", "/score/"]
)
def test_no_spelling_of_a_path_passes_without_a_key(served: Served, path: str) -> None:
    assert request(served.port, path, body=b'{"data": [[1]]}')[0] == 401
    assert request(served.port, path)[0] == 401


def test_a_body_above_the_cap_gets_413(served: Served) -> None:
    status, _ = request(served.port, "/score", key=keys.read(NAME).primary, body=b"x" * (101 * MB))
    assert status == 413


def test_a_chunked_body_above_the_cap_gets_413(served: Served) -> None:
    """No Content-Length to refuse from: nginx counts the chunks as they come."""
    assert chunked(served.port, "/score", keys.read(NAME).primary, 101 * MB) == 413


def test_the_liveness_route_answers_without_a_key(served: Served) -> None:
    status, _ = request(served.port, "/")
    assert status == 200


def test_keys_are_printed_by_serve_keys_and_never_in_the_log(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    k = keys.read(NAME)
    assert main(["serve", "keys", str(served.spec)]) == 0
    assert capsys.readouterr().out == f"primary: {k.primary}\nsecondary: {k.secondary}\n"
    assert main(["serve", str(served.spec), "--logs", "--addr", served.addr]) == 0
    logs = capsys.readouterr()
    assert logs.out + logs.err, "the container logged nothing"
    for key in (k.primary, k.secondary):
        assert key not in logs.out and key not in logs.err


HEADERS = """\
import json

from azureml_inference_server_http.api.aml_request import rawhttp


def init():
    pass


@rawhttp
def run(request):
    headers = dict(request.headers)
    print("score.py saw the headers " + json.dumps(headers), flush=True)
    return headers
"""


def test_the_server_never_sees_the_key(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A score.py that answers and logs its request headers: no Authorization among them."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "score.py").write_text(HEADERS)
    port = _serve_another(served, "serve-headers", src)
    key = keys.read("serve-headers").primary
    status, body = request(port, "/score", key=key, body=b"{}")
    assert status == 200, body[-2000:]
    seen = {name.lower() for name in json.loads(body)}
    assert "content-type" in seen and "authorization" not in seen
    logs = _logs(served, "serve-headers", capsys)
    assert "score.py saw the headers" in logs
    assert key not in logs


def test_equal_keys_serve_and_never_reach_the_log(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    """A secondary equal to the primary (written by hand) is one key to nginx, not a
    `conflicting parameter` error that prints it."""
    name = "serve-samekey"
    k = keys.ensure(name)
    (k.folder / "secondary").write_text(k.primary + "\n")
    port = _serve_another(served, name)
    status, body = request(port, "/score", key=k.primary, body=json.dumps({"data": [[1]]}).encode())
    assert status == 200, body[-2000:]
    assert k.primary not in _logs(served, name, capsys)


def test_a_regenerated_key_works_and_the_old_one_no_longer_does(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    before = keys.read(NAME)
    assert main(["serve", "regen-key", "primary", str(served.spec), "--addr", served.addr]) == 0
    assert "the running service uses it now" in capsys.readouterr().err
    after = keys.read(NAME)
    assert after.primary != before.primary and after.secondary == before.secondary
    assert _score(served, after.primary)[0] == 200
    assert _score(served, before.primary)[0] == 401
    assert _score(served, after.secondary)[0] == 200  # the other key never stopped working


def test_an_init_that_raises_is_one_clear_error_and_exit_3(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same image, its score.py replaced by one whose init() raises (`--source`): what
    `serve` says is the error, on one line, after the end of the container's log."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "score.py").write_text(FAILING)
    argv = ["serve", str(served.spec), "--name", "init-fails", "--source", str(src), "--port", "0"]
    code = main([*argv, "--addr", served.addr, "--network", "host", "--progress", "quiet"])
    out, err = capsys.readouterr()
    assert code == EXIT_ENVIRONMENT, err[-4000:]
    assert out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("layerkit: error: the server exited (")
    assert "init() of the entry script raised RuntimeError: no model here: init-e2e-marker" in last, err[
        -6000:
    ]
    # Above it, the end of the server's log: the traceback, not the settings it prints on exit.
    above = "\n".join(err.strip().splitlines()[:-1])
    assert "raise RuntimeError('no model here: init-e2e-marker')" in above
    assert "Worker failed to boot" in above
    # Kept, stopped, for --logs; --stop removes it.
    engine = local.LocalEngine(served.docker_host)
    try:
        [cid] = engine.containers("init-fails")
        assert engine.exit_code(cid) not in (None, 0)
        assert main(["serve", str(served.spec), "--name", "init-fails", "--stop", "--addr", served.addr]) == 0
        assert engine.containers("init-fails") == []
    finally:
        engine.close()


def test_stop_removes_the_deployment(served: Served) -> None:
    """A deployment of its own (the module's stays up for the other tests, in any order)."""
    port = _serve_another(served, "serve-stop")
    assert request(port, "/")[0] == 200
    engine = local.LocalEngine(served.docker_host)
    try:
        assert len(engine.containers("serve-stop")) == 1
        assert main(["serve", str(served.spec), "--name", "serve-stop", "--stop", "--addr", served.addr]) == 0
        assert engine.containers("serve-stop") == []
        # The module's own deployment still uses the network: it stays.
        assert _networks(served.docker_host) == [local.NETWORK]
    finally:
        engine.close()
    with pytest.raises(OSError):
        request(port, "/")


def test_a_network_removed_under_a_starting_serve_is_made_again(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --stop` of the last other deployment removes the network when it finds no
    container, which a starting `serve` has not made yet: here that interleaving happens for
    sure (the network goes right after it was ensured), on a network of this test's own (the
    module's deployment keeps the shared one in use). The start makes it again and serves."""
    import docker

    net = f"layerkit-serve-race-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(local, "NETWORK", net)
    ensure = local.LocalEngine._network
    api = docker.APIClient(base_url=served.docker_host)
    raced: list[str] = []

    def racing(self: local.LocalEngine, name: str) -> None:
        ensure(self, name)
        if not raced:
            raced.append(name)
            api.remove_network(name)  # what the other run's --stop does now

    monkeypatch.setattr(local.LocalEngine, "_network", racing)
    try:
        port = _serve_another(served, "serve-race")
        assert raced == [net]
        assert request(port, "/")[0] == 200
        attached = api.inspect_network(net)["Containers"] or {}
        assert len(attached) == 1, attached
    finally:
        main(["serve", str(served.spec), "--name", "serve-race", "--stop", "--addr", served.addr])
        if "serve-race" in served.extra:
            served.extra.remove("serve-race")
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(net)  # the module's deployment still runs: --stop leaves it
        api.close()
