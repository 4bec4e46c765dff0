"""`make demo`: the main job on the embedded example, on an air-gapped site made here.

Starts a private dockerd (Docker 26 with the containerd image store; DOCKERD_ENGINE=20: Debian
12's dockerd 20.10) and registry on 127.0.0.1 (scripts/services/), a local conda channel and
PyPI mirror, then runs layerkit as a user would: validate, lock, render, build (pushing to the
registry), build again (found by hash: no solve), and runs a program of the environment inside
the image. Prints the engine, the hash and the image size.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fixtures_build as fb  # noqa: E402
import fixtures_services as fs  # noqa: E402

from layerkit.resources import cache_dir  # noqa: E402


def layerkit(*args: str) -> str:
    print(f"$ layerkit {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "layerkit", *args], stdout=subprocess.PIPE, text=True)
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
            fb.airgap_site(work / "site") as site,
        ):
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
            print(f"\nengine:           {engine_line(svc.docker_host)}")
            print(f"environment hash: {first['hash']}")
            print(f"image:            {first['image']}")
            print(f"image size:       {first['size'] / 1e6:.1f} MB compressed in the registry")
            print(f"first build:      {first['action']} in {first['seconds']:.1f}s")
            print(f"second build:     {again['action']} in {again['seconds']:.2f}s (no solve)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
