"""Base image digests in locks, and `layerkit outdated`: real conda-lock on a local channel,
a real registry whose tag is moved under the lock."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
from fixtures_services import Services, refused_port

from layerkit.build.registry import ImageRef, RegistryClient

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lock_sandbox")]


def _spec(tmp: Path, base: str, channel_url: str) -> Path:
    path = tmp / "env.yaml"
    path.write_text(
        f"name: pinned\nbase: {{image: '{base}'}}\n"
        f"conda:\n  channels: ['{channel_url}']\n  dependencies: [python=3.11]\n"
    )
    return path


def _move_tag(ref: ImageRef) -> str:
    """Re-push the tag's manifest with one annotation more: same layers, a new digest."""
    body, media_type, _ = RegistryClient().get_manifest(ref)
    doc = json.loads(body)
    doc["annotations"] = {"io.layerkit.test": "moved"}
    data = json.dumps(doc, indent=3).encode()
    port = ref.registry.rsplit(":", 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    conn.request("PUT", f"/v2/{ref.repository}/manifests/{ref.tag}", data, {"Content-Type": media_type})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 201, resp.status
    return resp.headers["Docker-Content-Digest"]


def test_lock_pins_the_base_and_outdated_sees_it_move(
    cli, services: Services, channel: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = channel
    client = RegistryClient()
    base = ImageRef.parse(f"{services.registry}/outdated/base:1")
    client.copy(ImageRef.parse(services.base_image), base)
    first = client.head_manifest(base)
    assert first is not None
    base_ref = f"{services.registry}/outdated/base:1"
    spec = _spec(tmp_path, base_ref, url)

    r = cli("lock", spec, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["base_digests"] == {base_ref: first.digest}
    # conda-lock itself still reads the lock with our metadata in it.
    from conda_lock.lockfile import parse_conda_lock_file

    meta = parse_conda_lock_file(tmp_path / "env.conda-lock.yml").metadata.custom_metadata
    assert json.loads(meta["layerkit_base_digests"]) == {base_ref: first.digest}

    dockerfile = cli("render", spec).out
    assert f"FROM {base_ref}@{first.digest} AS base" in dockerfile
    pinned_hash = cli("hash", spec).out
    assert cli("hash", spec, "--no-lock").out != pinned_hash

    r = cli("outdated", spec)
    assert r.code == 0, r.err
    assert r.out.startswith(f"current  {spec} {base_ref}")

    moved = _move_tag(base)
    assert moved != first.digest
    r = cli("outdated", spec, "--json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["schema"] == "layerkit.outdated/1"
    (env,) = doc["environments"]
    assert env["behind"] is True
    assert env["bases"] == [
        {"ref": base_ref, "locked": first.digest, "current": moved, "status": "behind", "detail": ""}
    ]
    # The render still pins what was locked: nothing moves until the lock does.
    assert f"@{first.digest} AS base" in cli("render", spec).out

    assert cli("lock", spec).code == 0
    assert cli("outdated", spec).code == 0
    assert f"FROM {base_ref}@{moved} AS base" in cli("render", spec).out
    assert cli("hash", spec).out != pinned_hash  # a moved base is a new environment

    # Another base for the same lock: the packages are still fresh, the pin is not.
    other = f"{services.registry}/outdated/base:2"
    client.copy(ImageRef.parse(services.base_image), ImageRef.parse(other))
    spec.write_text(spec.read_text().replace(base_ref, other))
    r = cli("lock", "--check", spec)
    assert r.code == 1 and f"pins no digest for the base image {other}" in r.err
    r = cli("render", spec)
    assert f"FROM {other} AS base" in r.out and "pins no digest" in r.err


def test_unpinned_and_unreachable_bases(
    cli, channel: tuple[Path, str], services: Services, tmp_path: Path
) -> None:
    _, url = channel
    spec = _spec(tmp_path, services.base_image, url)
    assert cli("lock", spec, "--no-pin-base").code == 0
    r = cli("outdated", spec)
    assert r.code == 0
    assert r.out.startswith("unpinned ")
    assert "records no digest" in r.err

    down = f"127.0.0.1:{refused_port()}/nowhere/base:1"
    spec = _spec(tmp_path, down, url)
    r = cli("lock", spec)
    assert r.code == 0, r.err  # an air-gapped lock still locks; the base stays floating
    assert f"base image {down} is not pinned" in r.err
    assert f"FROM {down} AS base" in cli("render", spec).out
    r = cli("outdated", spec)
    assert r.code == 3
    assert "cannot tell whether" in r.err and r.out.startswith("unknown ")
