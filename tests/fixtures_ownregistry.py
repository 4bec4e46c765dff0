"""A registry of a test's own next to a dockerd that outlives the test (test_faults.py: the
test kills that registry, never the dockerd).

``registry_like(svc)`` starts an empty registry and copies ``svc``'s base image into it byte
for byte over the registry API: the same manifest digest, so BuildKit finds for builds on it
what it cached for earlier ones on ``svc``'s base, while every push still goes into a registry
that held nothing else.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures_services import Services, registry

from layerkit.build.registry import MANIFEST_TYPES

T = 600.0  # seconds: only a guard against a hang


@contextmanager
def registry_like(svc: Services) -> Iterator[Services]:
    """``svc``'s dockerd, and a new registry holding only ``svc``'s base image (same repo:tag,
    same digest). Its state lives under a fresh short folder in /tmp (Services.root), in the
    layout fixtures_faults.ServiceDirs.of() reads: the registry in root/"r" (there is no
    root/"d": the dockerd is not this registry's to kill)."""
    root = Path(tempfile.mkdtemp(prefix="lk-f-", dir="/tmp"))
    try:
        with registry(root / "r") as reg:
            repo_tag = svc.base_image.split("/", 1)[1]
            repo, tag = repo_tag.rsplit(":", 1)
            copy_manifest(svc.registry, reg.address, repo, tag)
            yield Services(svc.docker_host, reg.address, f"{reg.address}/{repo_tag}", root)
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
    start = urllib.request.Request(f"http://{dst}/v2/{repo}/blobs/uploads/", data=b"", method="POST")
    with urllib.request.urlopen(start, timeout=T) as r:
        location = r.headers["Location"]  # absolute, or a path on dst; carries the upload's state
    url = location if location.startswith("http") else f"http://{dst}{location}"
    sep = "&" if "?" in url else "?"
    put = urllib.request.Request(
        f"{url}{sep}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(put, timeout=T).close()  # the registry checks the digest: a bad copy fails here
