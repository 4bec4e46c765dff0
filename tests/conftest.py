from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# A shell's background job (`make test &`, nohup) starts with SIGINT ignored, and children
# inherit an ignored signal: the Ctrl-C tests' layerkit would then never see theirs. A
# handled signal is reset to the default in children, so handle it here, once.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the layerkit CLI in-process and capture its streams."""
    from layerkit.cli import main

    def run(*args: str | Path) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/ from the current output"
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory):
    """The standard local conda channel (tests/fixtures_channels.py), served on 127.0.0.1."""
    import fixtures_channels as fx

    root = fx.make_channel(tmp_path_factory.mktemp("chan") / "channel", fx.default_packages())
    url, stop = fx.serve_channel(root)
    yield root, url
    stop()


@pytest.fixture(scope="session")
def services():
    """Docker 26 from Debian 13 (containerd image store), an anonymous loopback registry and
    the Debian base image in it: the engine every e2e test runs on."""
    import fixtures_services as fs

    with fs.dockerd_with_registry(engine="26") as svc:
        yield svc


@pytest.fixture(scope="session")
def inference_site(services, tmp_path_factory: pytest.TempPathFactory):
    """The inference server's wheels on a loopback PyPI mirror and the inference base
    (python3-venv, nginx-light) in the services' registry: tests/fixtures_inference.py."""
    import fixtures_inference as fi

    with fi.inference_site(tmp_path_factory.mktemp("inference-site"), services) as site:
        yield site


@pytest.fixture(scope="session")
def multiarch_base(services):
    """An OCI image index in the services' registry (localhost:PORT/debian:bookworm-multi) over
    the amd64 base and an arm64 Debian 12 minbase: tests/fixtures_multiarch.py."""
    import fixtures_multiarch as fm

    return fm.multiarch_base(services)


@pytest.fixture(scope="session")
def multiarch_site(tmp_path_factory: pytest.TempPathFactory):
    """A conda channel with linux-64, linux-aarch64 and noarch packages and the PyPI mirror, on
    127.0.0.1: tests/fixtures_multiarch.py (multiarch_spec writes a two-platform spec on it)."""
    import fixtures_multiarch as fm

    with fm.multiarch_site(tmp_path_factory.mktemp("multiarch-site")) as site:
        yield site


@pytest.fixture(scope="session")
def services20():
    """Debian 12's dockerd 20.10 (vfs, BuildKit v0.8), its own registry and base image: the
    compatibility smoke test (tests/test_engine_classic.py)."""
    import fixtures_services as fs

    with fs.dockerd_with_registry(engine="20") as svc:
        yield svc


@pytest.fixture(scope="session")
def services26_classic():
    """Docker 26 on its classic image store (overlay2): the moby exporter and an Engine API push,
    as on most Docker 24-27 installs, but with a Dockerfile frontend that takes COPY --link."""
    import fixtures_services as fs

    with fs.dockerd_with_registry(engine="26-classic") as svc:
        yield svc


@pytest.fixture(scope="session")
def auth_registry(services):
    """A second loopback registry that needs basic auth (random user and password)."""
    import fixtures_services as fs

    with fs.registry(services.root / "auth-r", auth=True) as reg:
        yield reg


@pytest.fixture
def lock_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Private solver and layerkit caches (a reused port with other channel contents must not
    hit a cached repodata), and no CONDA_OVERRIDE_* leaking in from the caller."""
    import os

    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler-cache"))
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "lk-cache"))
    for k in list(os.environ):
        if k.startswith("CONDA_OVERRIDE_"):
            monkeypatch.delenv(k)
