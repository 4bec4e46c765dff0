"""Base images shaped like the real ones users build on, made here (Docker Hub is out of reach).

All start from Debian 11 (bullseye) minbase with its Python 3.9, older than the 3.10 that
py-rattler needs, debootstrapped from Debian's mirror (scripts/services/base-image.sh):

- ``debian11``: the plain rootfs; PATH is Docker's default.
- ``azureml``: shaped like Azure ML's base images (github.com/Azure/AzureML-Containers,
  base/*/Dockerfile): Miniconda in /opt/miniconda with its own older Python first on PATH
  (``ENV PATH /opt/miniconda/bin:$PATH``) and LD_LIBRARY_PATH to its lib.
- ``cuda``: the image config of nvidia/cuda:12.1.1-runtime-ubuntu22.04 (NVIDIA's
  container-images/cuda Dockerfiles, base and runtime): CUDA and NVIDIA paths on PATH and
  LD_LIBRARY_PATH, NVIDIA_* and CUDA_VERSION.

Each is ``docker import``ed with its ENV and pushed to the test registry.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fixtures_services import SERVICES, Services, run_script

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STUB = "#!/bin/sh\necho '{name}: a stub of the real tool (none can be had here)'\n"


@dataclass(frozen=True)
class Shape:
    env: dict[str, str]
    files: dict[str, str]  # path -> text (executable)
    links: dict[str, str]  # path -> symlink target
    kept: dict[str, str]  # variable -> what the final image's value must contain


SHAPES = {
    "debian11": Shape(env={"PATH": DEFAULT_PATH}, files={}, links={}, kept={"PATH": "/usr/bin"}),
    "azureml": Shape(
        env={
            "PATH": f"/opt/miniconda/bin:{DEFAULT_PATH}",
            "LD_LIBRARY_PATH": "/opt/miniconda/lib",
            "LANG": "C.UTF-8",
        },
        files={"opt/miniconda/bin/conda": STUB.format(name="conda 4.5.11")},
        links={"opt/miniconda/bin/python": "/usr/bin/python3.9", "opt/miniconda/bin/python3": "python"},
        kept={"PATH": "/opt/miniconda/bin", "LD_LIBRARY_PATH": "/opt/miniconda/lib"},
    ),
    "cuda": Shape(
        env={
            "PATH": f"/usr/local/nvidia/bin:/usr/local/cuda/bin:{DEFAULT_PATH}",
            "LD_LIBRARY_PATH": "/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
            "NVIDIA_VISIBLE_DEVICES": "all",
            "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
            "NVIDIA_REQUIRE_CUDA": "cuda>=12.1 brand=tesla,driver>=470,driver<471",
            "CUDA_VERSION": "12.1.1",
        },
        files={"usr/local/cuda/bin/nvcc": STUB.format(name="nvcc")},
        links={},
        kept={
            "PATH": "/usr/local/nvidia/bin:/usr/local/cuda/bin",
            "LD_LIBRARY_PATH": "/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
            "NVIDIA_VISIBLE_DEVICES": "all",
            "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
            "NVIDIA_REQUIRE_CUDA": "cuda>=12.1 brand=tesla,driver>=470,driver<471",
            "CUDA_VERSION": "12.1.1",
        },
    ),
}


def _add_dirs(tf: tarfile.TarFile, path: str, seen: set[str]) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "./" + "/".join(parts[:i])
        if d not in seen:
            seen.add(d)
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)


def _shaped_tarball(rootfs: Path, shape: Shape, out: Path) -> None:
    shutil.copyfile(rootfs, out)
    with tarfile.open(out, "a") as tf:
        seen = set(tf.getnames())
        for path, text in sorted(shape.files.items()):
            _add_dirs(tf, path, seen)
            data = text.encode()
            info = tarfile.TarInfo("./" + path)
            info.size, info.mode = len(data), 0o755
            tf.addfile(info, io.BytesIO(data))
        for path, target in sorted(shape.links.items()):
            _add_dirs(tf, path, seen)
            info = tarfile.TarInfo("./" + path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)


def shaped_bases(services: Services) -> dict[str, str]:
    """Push each shape to the test registry; return shape name -> image ref."""
    rootfs = Path(run_script(SERVICES / "base-image.sh", "--tarball", "bullseye", timeout=900))
    env = {**os.environ, "DOCKER_HOST": services.docker_host}
    refs = {}
    with tempfile.TemporaryDirectory(dir=services.root) as tmp:
        for name, shape in SHAPES.items():
            ref = f"{services.registry}/shaped/{name}:bullseye"
            tarball = Path(tmp) / f"{name}.tar"
            _shaped_tarball(rootfs, shape, tarball)
            changes = [a for k, v in shape.env.items() for a in ("--change", f'ENV {k}="{v}"')]
            cmd = ["docker", "import", *changes, "--change", 'CMD ["/bin/bash"]', str(tarball), ref]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            subprocess.run(["docker", "push", ref], env=env, check=True, capture_output=True)
            # dockerd's BuildKit would prefer a local image: builds must pull like any base.
            subprocess.run(["docker", "rmi", ref], env=env, check=True, capture_output=True)
            refs[name] = ref
    return refs
