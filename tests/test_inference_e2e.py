"""The inference image end to end on the real engine (Docker 26): a pip-only environment on a
base shaped like Azure ML's inference bases (Debian 12, Python 3.11, nginx-light), the real
azureml-inference-server-http from a local PyPI mirror, a real score.py whose init() loads a
model file from AZUREML_MODEL_DIR. The container runs with the keys mounted read-only and no
network; a client inside it asks nginx on serve.port."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_channels as fx
import pytest
from docker.models.containers import Container
from fixtures_inference import CLIENT, inference_base, inference_wheelhouse
from fixtures_services import Services

from layerkit import api
from layerkit.build.builder import BuildOptions, BuildResult
from layerkit.build.progress import Progress

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
PRIMARY, SECONDARY = "primary-key_0123456789abcdef", "secondary-key_fedcba9876543210"
READY = "ready for serving traffic"  # azmlinfsrv, once init() has returned


def _spec(folder: Path, base: str, pypi: str, services: Services) -> Path:
    shutil.copytree(HERE / "inference" / "src", folder / "src")
    shutil.copytree(HERE / "inference" / "model", folder / "model")
    # As saved under umask 077: the image's user (1000) must still read them (sent as a+rX).
    for path in (folder / "src" / "score.py", folder / "model" / "weights.json"):
        path.chmod(0o600)
    (folder / "src").chmod(0o700)
    spec = folder / "layerkit.yaml"
    spec.write_text(
        "name: e2e-scorer\nversion: '1'\nextends: [layerkit:inference]\n"
        f"base:\n  image: {base}\nuser_managed: true\n"
        f"mirrors:\n  pypi_index: '{pypi}'\n"
        f"registry:\n  address: {services.registry}\n  repository: inference-e2e\n"
        "serve:\n  entry_script: score.py\n  source_directory: src\n"
        "  models:\n    - {name: scaler, version: 1, path: model/weights.json}\n"
    )
    return spec


def _build(spec: Path, services: Services) -> BuildResult:
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="host")
    return api.build_inference(spec, options=opts, progress=Progress("quiet"))


@pytest.fixture(scope="module")
def built(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuildResult, Path]]:
    root = tmp_path_factory.mktemp("inference")
    base = inference_base(services)
    url, stop = fx.serve_directory(inference_wheelhouse(root / "pypi"))
    try:
        spec = _spec(root / "spec", base, f"{url}/simple", services)
        yield _build(spec, services), spec
    finally:
        stop()


def _listening(container: Container) -> set[str]:
    """The container's listening TCP sockets (v4 and v6) as /proc shows them, ADDR:PORT in hex."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        text = container.exec_run(["cat", table]).output.decode()
        rows = [line.split() for line in text.splitlines()[1:]]
        found |= {row[1] for row in rows if len(row) > 3 and row[3] == "0A"}
    return found


def _keys(folder: Path, primary: str, secondary: str) -> Path:
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    for name, key in (("primary", primary), ("secondary", secondary)):
        (folder / name).write_text(key + "\n")
        (folder / name).chmod(0o444)  # the image's user (1000) reads them, as from a Secret
    return folder


def _wait_ready(container: docker.models.containers.Container) -> None:
    """Read the container's log until the server says it is ready (or the container ends)."""
    seen = []
    for raw in container.logs(stream=True, follow=True):
        seen.append(raw.decode(errors="replace"))
        if READY in seen[-1]:
            return
    pytest.fail("the container ended before the server was ready:\n" + "".join(seen)[-4000:])


def _ask(
    container: docker.models.containers.Container, cases: list[dict[str, object]], port: int = 5001
) -> dict[str, tuple[int, str]]:
    code, out = container.exec_run(["/opt/env/bin/python", "-c", CLIENT, str(port), json.dumps(cases)])
    assert code == 0, out.decode(errors="replace")
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return {d["name"]: (d["status"], d["body"]) for d in lines}


SCORE = json.dumps({"data": [1, 2]})


@contextlib.contextmanager
def _running(
    services: Services, image: str, keys: Path, env: dict[str, str] | None = None
) -> Iterator[Container]:
    """`image` started without a network, `keys` mounted read-only where the entrypoint reads
    them; the container removed and the client closed on exit."""
    client = docker.DockerClient(base_url=services.docker_host)
    try:
        client.images.pull(image)
        container = client.containers.run(
            image, detach=True, network_mode="none", environment=env or {},
            volumes={str(keys): {"bind": "/var/run/layerkit/keys", "mode": "ro"}},
        )  # fmt: skip
        try:
            yield container
        finally:
            container.remove(force=True)
    finally:
        client.close()


def _exit(container: Container) -> tuple[int, str]:
    """The exit status and log of a container that stops by itself."""
    status = container.wait(timeout=300)
    return int(status["StatusCode"]), container.logs().decode(errors="replace")


def test_inference_image_serves_with_keys(
    built: tuple[BuildResult, Path], services: Services, tmp_path: Path
) -> None:
    result, spec = built
    assert result.action == "built"
    rendered = api.render_inference(spec)
    assert result.image.endswith(f"/inference-e2e:{rendered.hash.hash}")
    keys = _keys(tmp_path / "keys", PRIMARY, SECONDARY)
    with _running(services, result.image, keys) as container:
        _wait_ready(container)
        got = _ask(container, [
            {"name": "live", "path": "/"},
            {"name": "primary", "path": "/score", "key": PRIMARY, "body": SCORE},
            {"name": "secondary", "path": "/score", "key": SECONDARY, "body": SCORE},
            {"name": "none", "path": "/score", "body": SCORE},
            {"name": "wrong", "path": "/score", "key": "not-a-key", "body": SCORE},
            {"name": "flipped", "path": "/score", "key": PRIMARY.swapcase(), "body": SCORE},
            {"name": "other path, no key", "path": "/swagger.json"},
            {"name": "101 MB", "path": "/score", "key": PRIMARY, "size": 101 * 1000 * 1000},
        ])  # fmt: skip
        assert got["live"][0] == 200, got["live"]
        for name in ("primary", "secondary"):
            status, body = got[name]
            assert status == 200, got[name]
            # The response is the model's: init() read weights.json from AZUREML_MODEL_DIR.
            assert json.loads(body) == {"scaled": [3, 6], "model": "scaler-v1"}
        assert got["none"][0] == 401 and got["wrong"][0] == 401
        assert got["flipped"][0] == 401  # nginx's map would compare exact strings ignoring case
        assert got["other path, no key"][0] == 401
        assert got["101 MB"][0] == 413
        # The server listens on a unix socket, on no TCP port: nothing reaches it past nginx,
        # even when the container is on the host's network.
        assert _listening(container) == {"00000000:1389"}  # nginx on 5001
        unix = container.exec_run(["cat", "/proc/net/unix"]).output.decode()
        assert "/tmp/layerkit-serve/server:31311" in unix, unix
        # A regenerated key works after `layerkit-serve reload`; the old one no longer does.
        new = "regenerated.key+42"  # regex characters in a key are matched as themselves
        (keys / "primary").chmod(0o644)
        (keys / "primary").write_text(new + "\n")
        code, out = container.exec_run(["/usr/local/bin/layerkit-serve", "reload"])
        assert code == 0, out.decode(errors="replace")
        after = _ask(container, [
            {"name": "new", "path": "/score", "key": new, "body": SCORE},
            {"name": "dot as any", "path": "/score", "key": "regeneratedXkey+42", "body": SCORE},
            {"name": "plus as repeat", "path": "/score", "key": "regenerated.keyy42", "body": SCORE},
            {"name": "old", "path": "/score", "key": PRIMARY, "body": SCORE},
            {"name": "secondary", "path": "/score", "key": SECONDARY, "body": SCORE},
        ])  # fmt: skip
        names = ("new", "old", "secondary", "dot as any", "plus as repeat")
        assert [after[n][0] for n in names] == [200, 401, 200, 401, 401], after


def test_unchanged_inference_image_is_found_by_hash(
    built: tuple[BuildResult, Path], services: Services
) -> None:
    first, spec = built
    again = _build(spec, services)
    assert again.action == "found" and again.image == first.image


def test_without_keys_the_container_refuses_to_start(built: tuple[BuildResult, Path], services: Services,
                                                      tmp_path: Path) -> None:  # fmt: skip
    result, _ = built
    empty = tmp_path / "nokeys"
    empty.mkdir()
    with _running(services, result.image, empty) as container:
        code, logs = _exit(container)
    assert code == 2, logs
    assert "has no key" in logs


def test_equal_keys_are_one_key_and_a_bad_one_is_refused_without_printing_it(
    built: tuple[BuildResult, Path], services: Services, tmp_path: Path
) -> None:
    result, _ = built
    same = _keys(tmp_path / "same", PRIMARY, PRIMARY)
    with _running(services, result.image, same) as container:
        _wait_ready(container)
        got = _ask(container, [{"name": "same", "path": "/score", "key": PRIMARY, "body": SCORE}])
        assert got["same"][0] == 200, got
        assert PRIMARY not in container.logs().decode(errors="replace")
    bad = "bad-key;with-a-semicolon"
    refused = _keys(tmp_path / "bad", PRIMARY, bad)
    with _running(services, result.image, refused) as container:
        code, logs = _exit(container)
    assert code == 2, logs
    assert "/var/run/layerkit/keys/secondary: a key is one or more of" in logs
    assert bad not in logs and PRIMARY not in logs


def test_init_that_raises_ends_the_container_with_its_error(
    built: tuple[BuildResult, Path], services: Services, tmp_path: Path
) -> None:
    """score.py's init() opens the model file: with no model there it raises, and the
    container exits non-zero with the server's error in its log."""
    result, _ = built
    keys = _keys(tmp_path / "keys", PRIMARY, SECONDARY)
    with _running(services, result.image, keys, {"AZUREML_MODEL_DIR": "/nonexistent"}) as container:
        code, logs = _exit(container)
    assert code != 0, logs
    assert "FileNotFoundError" in logs and "/nonexistent/scaler/1/weights.json" in logs, logs


def test_ports_move_at_run_time_and_goldens_pass_the_real_nginx(
    built: tuple[BuildResult, Path], services: Services, tmp_path: Path
) -> None:
    """Other ports without a new image (a container on the host's network needs free ones);
    and every golden nginx config (key on and off, own routes) as the base's nginx reads it."""
    import io
    import tarfile

    result, _ = built
    keys = _keys(tmp_path / "keys", PRIMARY, SECONDARY)
    goldens = sorted((HERE / "golden").glob("inference-*.nginx.conf"))
    assert len(goldens) == 3
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path in goldens:
            tar.add(path, arcname=path.name)
    env = {"LAYERKIT_PORT": "6001", "LAYERKIT_SERVER_PORT": "31400"}
    with _running(services, result.image, keys, env) as container:
        _wait_ready(container)  # keys.conf, which the key-auth configs include, is written
        got = _ask(container, [
            {"name": "live", "path": "/"},
            {"name": "score", "path": "/score", "key": SECONDARY, "body": SCORE},
            {"name": "no key", "path": "/score", "body": SCORE},
        ], port=6001)  # fmt: skip
        assert [got[n][0] for n in ("live", "score", "no key")] == [200, 200, 401], got
        assert _listening(container) == {"00000000:1771"}  # 6001: nginx only
        unix = container.exec_run(["cat", "/proc/net/unix"]).output.decode()
        assert "/tmp/layerkit-serve/server:31400" in unix, unix
        assert container.put_archive("/tmp", archive.getvalue())
        for path in goldens:
            code, out = container.exec_run(["nginx", "-t", "-e", "stderr", "-c", f"/tmp/{path.name}"])
            assert code == 0, (path.name, out.decode(errors="replace"))
