"""What an inference image needs on an air-gapped site (issue 16): the Azure ML inference
server's wheels on the local PyPI mirror, and a base shaped like Azure ML's inference bases
(Debian 12's python3-venv and nginx-light; scripts/services/base-image.sh bookworm-inference).

The wheels are downloaded from PyPI once (`pip download`, as CI fills a mirror) into
$LAYERKIT_CACHE/wheelhouse-inference and reused: the versions the first download resolved are
the ones every later build installs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fixtures_build as fb
import fixtures_channels as fx
from fixtures_services import SERVICES, Services, run_script

from layerkit.resources import cache_dir

SERVER = "azureml-inference-server-http==1.5.1"  # base-images/layers/inference.yaml's pin
BASE_SUITE = "bookworm-inference"
# The wheels of the base's interpreter: Debian 12's CPython 3.11 on x86-64 glibc 2.36.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def server_wheels() -> list[Path]:
    """azureml-inference-server-http and its dependencies, as wheels (downloaded once)."""
    cache = cache_dir() / "wheelhouse-inference"
    done = cache / ".complete"  # a download cut short must not pass for a wheelhouse
    if not done.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
             "--only-binary=:all:", *platforms, "--python-version", "3.11", "--implementation", "cp",
             "-d", str(cache), SERVER],
            check=True,
        )  # fmt: skip
        done.write_text(SERVER + "\n")
    return sorted(cache.glob("*.whl"))


@dataclass(frozen=True)
class InferenceSite:
    pypi_url: str  # http://127.0.0.1:PORT/simple: the server's wheels
    base_image: str  # localhost:PORT/debian:bookworm-inference (python3-venv, nginx-light)


def push_base(services: Services, repo: str = f"debian:{BASE_SUITE}") -> str:
    """The inference base, pushed to the services' registry (debootstrapped once, cached)."""
    port = services.registry.rsplit(":", 1)[1]
    return run_script(
        SERVICES / "base-image.sh", services.docker_host, f"127.0.0.1:{port}", repo, BASE_SUITE, timeout=900
    )


@contextmanager
def inference_site(root: Path, services: Services) -> Iterator[InferenceSite]:
    index = fb.wheelhouse(root / "pypi", server_wheels())
    url, stop = fx.serve_directory(index)
    try:
        yield InferenceSite(f"{url}/simple", push_base(services))
    finally:
        stop()
