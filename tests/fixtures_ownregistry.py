"""Services of a test's own, cheap to make next to the session's (test_faults.py: the test
kills its registry, or its dockerd).

``registry_like(svc)`` starts an empty registry and copies ``svc``'s base image into it byte
for byte over the registry API: the same manifest digest, with no `docker import` and push of
a new base (the bulk of starting services). On ``svc``'s dockerd, BuildKit finds for builds on
it what it cached for earlier ones on that base, while every push still goes into a registry
that held nothing else; with ``own_dockerd``, a fresh Docker 26 whose builds are all cold.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures_multiarch import put_blob
from fixtures_services import SERVICES, Services, registry, run_script

from layerkit.build.registry import MANIFEST_TYPES

T = 600.0  # seconds: only a guard against a hang


@contextmanager
def registry_like(svc: Services, *, own_dockerd: bool = False) -> Iterator[Services]:
    """``svc``'s dockerd (or with ``own_dockerd`` a new Docker 26, stopped by PID at the end),
    and a new registry holding only ``svc``'s base image (same repo:tag, same digest). Their
    state lives under a fresh short folder in /tmp (Services.root), in the layout
    fixtures_faults.ServiceDirs.of() reads: the registry in root/"r", an own dockerd in
    root/"d" (there is none with ``svc``'s dockerd: that one is not the test's to kill)."""
    root = Path(tempfile.mkdtemp(prefix="lk-f-", dir="/tmp"))
    try:
        docker_host = svc.docker_host
        if own_dockerd:
            docker_host = run_script(
                SERVICES / "dockerd.sh", "start", root / "d", timeout=600, env={"DOCKERD_ENGINE": "26"}
            )
        try:
            with registry(root / "r") as reg:
                repo_tag = svc.base_image.split("/", 1)[1]
                repo, tag = repo_tag.rsplit(":", 1)
                copy_manifest(svc.registry, reg.address, repo, tag)
                yield Services(docker_host, reg.address, f"{reg.address}/{repo_tag}", root)
        finally:
            if own_dockerd:
                subprocess.run([SERVICES / "dockerd.sh", "stop", root / "d"], check=False, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def copy_manifest(src: str, dst: str, repo: str, ref: str) -> None:
    """Manifest ``ref`` (tag or digest) of ``repo``, and all it references, from ``src`` to ``dst``."""
    accept = {"Accept": ", ".join(MANIFEST_TYPES)}
    with urllib.request.urlopen(
        urllib.request.Request(f"http://{src}/v2/{repo}/manifests/{ref}", headers=accept), timeout=T
    ) as r:
        body, media_type = r.read(), r.headers["Content-Type"]
    doc = json.loads(body)
    for child in doc.get("manifests", []):
        copy_manifest(src, dst, repo, child["digest"])
    for blob in [doc["config"], *doc["layers"]] if "config" in doc else []:
        _copy_blob(src, dst, repo, blob["digest"])
    put = urllib.request.Request(
        f"http://{dst}/v2/{repo}/manifests/{ref}",
        data=body,
        method="PUT",
        headers={"Content-Type": media_type},
    )
    urllib.request.urlopen(put, timeout=T).close()


def _copy_blob(src: str, dst: str, repo: str, digest: str) -> None:
    with urllib.request.urlopen(f"http://{src}/v2/{repo}/blobs/{digest}", timeout=T) as r:
        data = r.read()
    assert put_blob(dst, repo, data) == digest  # the registry checks the digest too
