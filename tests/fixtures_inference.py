"""What the inference e2e tests need besides the shared services (fixtures_services.py):

- a base shaped like Azure ML's inference bases: Debian 12 with a real Python 3.11 (venv) and
  nginx-light from the distro (scripts/services/base-image.sh bookworm-inference), pushed to
  the services' registry;
- a PyPI mirror with the server's wheels and their dependencies, for CPython 3.11 on
  manylinux x86_64: `pip download` from PyPI once, cached under ~/.cache/layerkit (as the
  py-rattler wheelhouse of fixtures_build.py); CI fills it the same way;
- a client run inside the container (its network is "none": nothing on the host is reached,
  no port is shared with other tests), which prints what each request got.
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

SERVER = "azureml-inference-server-http==1.5.1"  # as base-images/layers/inference.yaml
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64")


def inference_base(services: Services, repo: str = "debian:bookworm-inference") -> str:
    """localhost:PORT/<repo> in the services' registry (`library/...`: a Docker Hub mirror's
    name for it, as the demo's registry is)."""
    port = services.registry.rsplit(":", 1)[1]
    return run_script(
        SERVICES / "base-image.sh", services.docker_host, f"127.0.0.1:{port}", repo,
        "bookworm-inference", timeout=900,
    )  # fmt: skip


def server_wheels() -> list[Path]:
    """The server's wheels and every dependency's, downloaded from PyPI once (cached)."""
    cache = cache_dir() / "inference-wheelhouse"
    done = cache / f".complete-{SERVER}"
    if not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        platforms = [a for p in PLATFORMS for a in ("--platform", p)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", *platforms,
             "--python-version", "3.11", "--implementation", "cp", "-d", str(cache), SERVER],
            check=True, timeout=900,
        )  # fmt: skip
        done.touch()
    return sorted(cache.glob("*.whl"))


def inference_wheelhouse(root: Path) -> Path:
    """A PEP 503 index at ``root/simple`` with the server and every dependency (and the
    py-rattler wheel of fixtures_build, so one mirror serves env stages too); return ``root``."""
    return fb.wheelhouse(root, server_wheels())


@dataclass(frozen=True)
class InferenceSite:
    pypi_url: str  # http://127.0.0.1:PORT/simple: the server's wheels
    base_image: str  # localhost:PORT/debian:bookworm-inference (python3-venv, nginx-light)


@contextmanager
def inference_site(root: Path, services: Services) -> Iterator[InferenceSite]:
    """The mirror served on 127.0.0.1 and the base pushed: what `layerkit serve`'s e2e tests use."""
    url, stop = fx.serve_directory(inference_wheelhouse(root / "pypi"))
    try:
        yield InferenceSite(f"{url}/simple", inference_base(services))
    finally:
        stop()


# Run in the container by its own Python: each request's status and body, as JSON lines.
# The 101 MB body goes over a raw socket: nginx answers 413 from the headers (then reads and
# drops what follows, for a while), so the answer is read as soon as it comes.
CLIENT = r"""
import json, select, socket, sys, urllib.error, urllib.request

PORT = int(sys.argv[1])

def request(path, key=None, body=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = "Bearer " + key
    data = None if body is None else body.encode()
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")

def big(path, key, size):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=300)
    s.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode())
    chunk = b"x" * (1 << 20)
    sent, head = 0, b""
    # Send the body until the server answers (nginx does from the headers), then read that:
    # a server that stops reading and closes must not lose its answer to our own sending.
    while sent < size and not head:
        readable, writable, _ = select.select([s], [s], [], 300)
        if readable:
            head = s.recv(4096)
        elif writable:
            try:
                sent += s.send(chunk[: min(len(chunk), size - sent)])
            except (BrokenPipeError, ConnectionResetError):
                break
    while b"\r\n" not in head:
        more = s.recv(4096)
        if not more:
            break
        head += more
    return int(head.split(b" ", 2)[1]), f"sent {sent} of {size} bytes"

for case in json.loads(sys.argv[2]):
    if case.get("size"):
        status, body = big(case["path"], case["key"], case["size"])
    else:
        status, body = request(case["path"], case.get("key"), case.get("body"))
    print(json.dumps({"name": case["name"], "status": status, "body": body}), flush=True)
"""
