"""`make demo`: the main job on the embedded example, on an air-gapped site made here.

Starts a private dockerd (Docker 26 with the containerd image store; DOCKERD_ENGINE=20: Debian
12's dockerd 20.10) and registry on 127.0.0.1 (scripts/services/), a local conda channel and
PyPI mirror, then runs layerkit as a user would: validate, lock, render, build (pushing to the
registry), build again (found by hash: no solve), and runs a program of the environment inside
the image. Then it serves the example model (examples/demo/serve/: score.py and a tiny JSON
model, on the Azure ML inference server) with `layerkit serve`, scores one request with the
primary key, and stops it. Prints the engine, the hash, the image size and the answer.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fixtures_build as fb  # noqa: E402
import fixtures_inference as fi  # noqa: E402
import fixtures_services as fs  # noqa: E402

from layerkit.resources import cache_dir  # noqa: E402


def layerkit(*args: str, env: dict[str, str] | None = None) -> str:
    print(f"$ layerkit {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "layerkit", *args], stdout=subprocess.PIPE, text=True,
        env={**os.environ, **env} if env else None,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(proc.returncode)
    return proc.stdout


def site_yaml(site: fb.Site, registry: str) -> str:
    """The scratch copy's site.yaml: where this run's services are. The base and installer
    images are named `debian:bookworm` and pulled through `mirrors.base_registry` (this run's
    registry, which holds it as library/debian:bookworm): mirrors stay out of the hash, so the
    random port does too and every run shows the same environment hash."""
    return (
        fb.site_layer(site, "debian:bookworm", registry, base_mirror=registry)
        + "  repository: demo/layerkit\n"
    )


def engine_line(docker_host: str) -> str:
    """Which engine the demo runs on, as the daemon reports it."""
    import docker

    api = docker.APIClient(base_url=docker_host)
    try:
        version, info = api.version()["Version"], api.info()
    finally:
        api.close()
    containerd = ["driver-type", "io.containerd.snapshotter.v1"] in (info.get("DriverStatus") or [])
    return f"Docker {version} ({'containerd image store' if containerd else info.get('Driver')})"


def serve_and_score(spec: str, addr: str, state: Path) -> tuple[str, str]:
    """`layerkit serve` the example model, score one request with the primary key, stop it:
    (scoring URL, the answer). Its keys go to a state folder of this run (XDG_STATE_HOME), not
    the user's."""
    env = {"XDG_STATE_HOME": str(state)}
    build = ["--addr", addr, "--network", "host", "--progress", "plain"]
    url = layerkit("serve", spec, "--port", "0", *build, env=env).strip()
    try:
        keys = dict(line.split(": ", 1) for line in layerkit("serve", "keys", spec, env=env).splitlines())
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            body = json.dumps({"data": [[1, 2, 3]]})
            headers = {"Authorization": f"Bearer {keys['primary']}", "Content-Type": "application/json"}
            conn.request("POST", "/score", body, headers)
            resp = conn.getresponse()
            answer = resp.read().decode()
        finally:
            conn.close()
        if resp.status != 200:
            sys.exit(f"demo: scoring answered {resp.status}: {answer[-2000:]}")
        print(f"\n$ curl -H 'Authorization: Bearer <primary key>' -d '{body}' {url}\n{answer}")
        return url, answer
    finally:
        layerkit("serve", spec, "--stop", "--addr", addr, env=env)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--registry-dir", type=Path, default=cache_dir() / "demo-registry",
        help="the registry's storage, kept between runs (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="layerkit-demo-"))
    try:
        print(
            "starting dockerd, a registry and the base image (first run: debootstrap, ~1 min)",
            file=sys.stderr,
        )
        # The registry's storage is kept between runs: the base image pushed once keeps its
        # digest (docker import stamps the time into a new one), which the lock pins and the
        # hash covers, so every run shows the same environment hash.
        with (
            fs.dockerd_with_registry(
                base_repo="library/debian:bookworm", registry_root=args.registry_dir
            ) as svc,
            # The site's PyPI mirror also holds the inference server's wheels (fetched once).
            fb.airgap_site(work / "site", extra_wheels=fi.server_wheels()) as site,
        ):
            # The serving example's base: Debian 12 with python3-venv and nginx-light, as the
            # registry's mirror of `debian:bookworm-inference` (made once, like the base).
            fi.inference_base(svc, "library/debian:bookworm-inference")
            spec_dir = work / "spec"
            shutil.copytree(ROOT / "examples" / "demo", spec_dir)
            (spec_dir / "site.yaml").write_text(site_yaml(site, svc.registry))
            spec = str(spec_dir / "layerkit.yaml")
            addr = f"docker://{svc.docker_host}"
            layerkit("validate", spec)
            layerkit("lock", spec)
            layerkit("lock", "--check", spec)
            dockerfile = layerkit("render", spec)
            print(dockerfile)
            build = ["build", "--json", "--addr", addr, "--network", "host", "--progress", "plain", spec]
            first = json.loads(layerkit(*build))
            again = json.loads(layerkit(*build))
            import docker

            engine = docker.DockerClient(base_url=svc.docker_host)
            out = fs.container_output(engine, first["image"], ["mlkit", "40"])
            print(f"\n$ docker run {first['image']} mlkit 40\n{out.decode().strip()}")
            url, answer = serve_and_score(str(spec_dir / "serve" / "layerkit.yaml"), addr, work / "state")
            print(f"\nengine:           {engine_line(svc.docker_host)}")
            print(f"environment hash: {first['hash']}")
            print(f"image:            {first['image']}")
            print(f"image size:       {first['size'] / 1e6:.1f} MB compressed in the registry")
            print(f"first build:      {first['action']} in {first['seconds']:.1f}s")
            print(f"second build:     {again['action']} in {again['seconds']:.2f}s (no solve)")
            print(f"served:           {url} -> {answer.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
