"""The skip-by-hash decision as `make` or CI pays it: a whole `layerkit build` process whose
image is already in the workspace registry (a real docker-registry on loopback, no daemon).

The image under the spec's hash is a minimal OCI image (one config blob, no layers) pushed
over the registry API; `build --addr` names a socket nobody listens on, so a run that tried
to build would fail instead of being timed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cold

GOAL_S = 0.3


def _push(address: str, repo: str, tag: str) -> None:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    blob = config.encode()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    base = f"http://{address}/v2/{repo}"
    start = urllib.request.Request(f"{base}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=30) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{address}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest}", data=blob, method="PUT")
    put.add_header("Content-Type", "application/octet-stream")
    urllib.request.urlopen(put, timeout=30).close()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest,
            "size": len(blob),
        },
        "layers": [],
    }
    req = urllib.request.Request(f"{base}/manifests/{tag}", data=json.dumps(manifest).encode(), method="PUT")
    req.add_header("Content-Type", manifest["mediaType"])
    urllib.request.urlopen(req, timeout=30).close()


def run(root: Path, tmp: Path, env: dict[str, str], log: Callable[[str], None]) -> dict[str, Any]:
    import fixtures_services as fs

    work = tmp / "skip"
    shutil.copytree(root / "tests" / "specs" / "layers", work / "layers")
    repo = f"bench/{uuid.uuid4().hex[:8]}"
    try:
        registry = fs.registry(tmp / "registry")
        reg = registry.__enter__()
    except Exception as exc:  # no registry binary here: say so in the table
        return {"available": False, "why": f"registry did not start: {exc}"}
    try:
        spec = work / "full-cpu.yaml"
        text = (root / "tests" / "specs" / "full-cpu.yaml").read_text()
        spec.write_text(text + f"registry:\n  address: {reg.address}\n  repository: {repo}\n")
        py = [sys.executable, "-m", "layerkit", "-q"]
        h = subprocess.run([*py, "hash", str(spec)], env=env, capture_output=True, text=True, check=True)
        _push(reg.address, repo, h.stdout.strip())
        dead = f"unix:///tmp/{uuid.uuid4().hex[:12]}.sock"
        log(f"skip by hash: build of a found image x{cold.RUNS}")
        res = cold.timed([*py, "build", "--addr", dead, "--json", str(spec)], env, root)
        one = subprocess.run(
            [*py, "build", "--addr", dead, "--json", str(spec)], env=env, capture_output=True, text=True
        )
        action = json.loads(one.stdout)["action"] if one.returncode == 0 else f"exit {one.returncode}"
        return {"available": True, "action": action, "goal_s": GOAL_S, **res}
    finally:
        registry.__exit__(None, None, None)
