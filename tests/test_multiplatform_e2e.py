"""A spec with `platforms: [linux-64, linux-aarch64]` built into one image index on a real
engine and registry (issue 17): each platform's image built for its platform (arm64 under
QEMU), the index put last over them, skip-by-hash on the next run, and a repair that rebuilds
only the platform whose manifest went missing.

The base is a stand-in until the shared multi-arch fixtures land: a busybox-static rootfs per
architecture (Debian's busybox-static .debs, from the apt mirror, cached), with three
one-line shims (getent, groupadd, useradd over /etc/group and /etc/passwd) for the user the
base stage creates, joined by an OCI index in the test registry. The spec is user-managed:
an env stage needs a Python installer image for arm64 (cross-installed once xrender's
`FROM --platform=$BUILDPLATFORM` env stage is in), which this base is not.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import jsonschema
import pytest
from fixtures_services import Services

from layerkit import api
from layerkit.build.builder import BuildOptions, BuildResult
from layerkit.build.hostplatform import engine_platform
from layerkit.build.indexplan import plan_document
from layerkit.build.progress import Progress
from layerkit.build.registry import MANIFEST_TYPES
from layerkit.build.runner import RunOptions
from layerkit.resources import cache_dir

pytestmark = pytest.mark.integration
SCHEMA = json.loads(
    (Path(__file__).parent.parent / "layerkit" / "schemas" / "plan-1.schema.json").read_text()
)

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ARCH = {"linux-64": ("amd64", "x86_64"), "linux-aarch64": ("arm64", "aarch64")}
APPLETS = ("sh", "cat", "chown", "echo", "grep", "id", "ls", "mkdir", "uname")
# What the base stage's user block calls, over /etc/group and /etc/passwd (Debian's busybox
# has no addgroup or adduser applets).
SHIMS = {
    "usr/bin/getent": '#!/bin/sh\n[ "$1" = group ] && grep -q "^[^:]*:[^:]*:$2:" /etc/group\n',
    "usr/sbin/groupadd": '#!/bin/sh\n# groupadd --gid N NAME\necho "$3:x:$2:" >> /etc/group\n',
    "usr/sbin/useradd": "#!/bin/sh\n# useradd --uid U --gid G --create-home --shell S NAME\n"
    'echo "$8:x:$2:$4::/home/$8:$7" >> /etc/passwd && mkdir -p "/home/$8" && chown "$2:$4" "/home/$8"\n',
}


def _busybox(arch: str) -> bytes:
    """Debian's static busybox for `arch`, the version apt knows here (cached)."""
    show = subprocess.run(["apt-cache", "show", "busybox-static"], capture_output=True, text=True, check=True)
    name = next(ln.split()[1] for ln in show.stdout.splitlines() if ln.startswith("Filename:"))
    name = name.rsplit("_", 1)[0] + f"_{arch}.deb"
    cached = cache_dir() / "busybox" / Path(name).name.replace(".deb", ".bin")
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            deb = Path(tmp) / "b.deb"
            urllib.request.urlretrieve(f"http://deb.debian.org/debian/{name}", deb)
            subprocess.run(["dpkg-deb", "-x", str(deb), f"{tmp}/root"], check=True)
            (Path(tmp) / "root/bin/busybox").replace(cached)
    return cached.read_bytes()


def _layer(busybox: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:

        def add(name: str, data: bytes | None = None, mode: int = 0o755, link: str | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 0
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)

        for d in ("bin", "etc", "home", "root", "tmp", "usr", "usr/bin", "usr/sbin"):
            add(d, mode=0o1777 if d == "tmp" else 0o755)
        add("bin/busybox", busybox)
        for applet in APPLETS:
            add(f"bin/{applet}", link="busybox")
        for path, text in SHIMS.items():
            add(path, text.encode())
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add("etc/group", b"root:x:0:\n", 0o644)
    return gzip.compress(out.getvalue(), mtime=0)


def _put(registry: str, repo: str, what: str, data: bytes, media: str | None = None) -> str:
    """A blob (media None) or a manifest at tag `what`; returns its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    base = f"http://{registry}/v2/{repo}"
    if media is None:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/blobs/uploads/", method="POST")) as r:
            location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else f"http://{registry}{location}"
        req = urllib.request.Request(f"{url}{sep}digest={digest}", data=data, method="PUT")
        req.add_header("Content-Type", "application/octet-stream")
    else:
        req = urllib.request.Request(f"{base}/manifests/{what}", data=data, method="PUT")
        req.add_header("Content-Type", media)
    urllib.request.urlopen(req, timeout=60).close()
    return digest


def busybox_base(registry: str, repo: str = "tiny", tag: str = "multi") -> str:
    """The two-architecture stand-in base (module doc); its index ref."""
    entries = []
    for arch, _ in ARCH.values():
        layer = _layer(_busybox(arch))
        diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
        config = json.dumps({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }).encode()  # fmt: skip
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _put(registry, repo, "", config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": _put(registry, repo, "", layer), "size": len(layer)}],
        }).encode()  # fmt: skip
        digest = _put(registry, repo, f"{tag}-{arch}", manifest, MANIFEST)
        entries.append({"mediaType": MANIFEST, "digest": digest, "size": len(manifest),
                        "platform": {"os": "linux", "architecture": arch}})  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode()
    _put(registry, repo, tag, index, INDEX)
    return f"{registry}/{repo}:{tag}"


# -- the registry, as a client sees it ------------------------------------------------------
def _get(services: Services, ref: str, method: str = "GET") -> tuple[bytes, str, str] | None:
    """(body, media type, digest) of `ref` (repo:tag or repo@digest), None when missing."""
    name = ref.split("/", 1)[1]
    repo, _, reference = name.partition("@") if "@" in name else name.rpartition(":")
    req = urllib.request.Request(
        f"http://{services.registry}/v2/{repo}/manifests/{reference}",
        method=method,
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.read(), str(resp.headers["Content-Type"]), str(resp.headers["Docker-Content-Digest"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _blob(services: Services, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"http://{services.registry}/v2/{repo}/blobs/{digest}", timeout=60) as resp:
        return bytes(resp.read())


def _delete(services: Services, ref: str) -> None:
    found = _get(services, ref, "HEAD")
    assert found is not None, ref
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    req = urllib.request.Request(
        f"http://{services.registry}/v2/{repo}/manifests/{found[2]}", method="DELETE"
    )
    urllib.request.urlopen(req, timeout=60).close()
    assert _get(services, ref, "HEAD") is None, ref


def _run(services: Services, image: str, platform: str, command: list[str]) -> str:
    """`docker run --platform P IMAGE COMMAND`'s stdout: attached before it starts."""
    client = docker.DockerClient(base_url=services.docker_host)
    try:
        client.images.pull(image, platform=platform)
        container = client.containers.create(image, command, platform=platform, network_mode="none")
        try:
            stream = container.attach(stdout=True, stderr=False, stream=True, logs=False)
            container.start()
            out = b"".join(stream)
            assert container.wait()["StatusCode"] == 0, out
        finally:
            container.remove(force=True)
        return out.decode()
    finally:
        client.close()


def _build(spec: Path, services: Services) -> BuildResult:
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="none")
    return api.build(spec, options=opts, progress=Progress("quiet"))


@pytest.fixture(scope="module", params=["26", "20"])
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[Services, str, str]]:
    """Docker 26 (containerd store: the image exporter pushes) and Debian 12's dockerd 20.10
    (moby exporter, Engine API push), each with its registry and the stand-in base in it."""
    services: Services = request.getfixturevalue("services" if request.param == "26" else "services20")
    yield services, busybox_base(services.registry), request.param


def _spec(folder: Path, base_ref: str, registry: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "layerkit.yaml"
    spec.write_text(
        "name: mp\nversion: '1'\nuser_managed: true\nplatforms: [linux-64, linux-aarch64]\n"
        f"base: {{image: '{base_ref}'}}\n"
        # A step of the user's own, run by each platform's solve (arm64: under QEMU).
        "steps:\n  - run: ['sh', '-c', 'uname -m > /etc/built-on']\n    stage: final\n"
        f"registry: {{address: '{registry}', repository: 't/{uuid.uuid4().hex[:8]}'}}\n"
    )
    return spec


def _index(services: Services, result: BuildResult) -> dict[str, str]:
    """platform -> digest the index at result.image lists; checks it is an OCI index whose
    every entry is the manifest the platform's tag names now, for that platform."""
    got = _get(services, result.image)
    assert got is not None, result.image
    body, media, digest = got
    assert media == INDEX and digest == result.digest
    doc = json.loads(body)
    assert doc["mediaType"] == INDEX
    listed = {}
    for m in doc["manifests"]:
        conda = next(
            p for p, (arch, _) in ARCH.items() if m["platform"] == {"os": "linux", "architecture": arch}
        )
        listed[conda] = m["digest"]
        own = _get(services, result.platforms[conda].image)
        assert (
            own is not None
            and own[2] == m["digest"]
            and m["size"] == len(own[0])
            and m["mediaType"] == own[1]
        )
    assert set(listed) == set(ARCH)
    return listed


def test_two_platforms_build_one_index_found_next_time_and_repaired(
    tmp_path: Path, engine: tuple[Services, str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    services, base, version = engine
    spec = _spec(tmp_path, base, services.registry)
    first = _build(spec, services)
    hashes = {p: api.hash_spec(spec, platform=p).hash for p in ARCH}
    assert first.action == "built" and first.pushed
    assert first.hash == api.hash_index(spec).hash and first.image.endswith(f":{first.hash}")
    assert {p: r.hash for p, r in first.platforms.items()} == hashes
    assert all(r.action == "built" and r.image.endswith(f":{hashes[p]}") for p, r in first.platforms.items())
    # The same path on both engines, but for who pushes each platform's image: dockerd
    # 20.10's through the Engine API (timed), Docker 26's image exporter itself.
    for r in first.platforms.values():
        assert any(k.startswith("push ") for k in r.timings) == (version == "20"), r.timings
    listed = _index(services, first)
    # The name tag names the index too.
    tagged = _get(services, first.image.rsplit(":", 1)[0] + ":mp-1")
    assert tagged is not None and tagged[2] == first.digest
    # Each platform's image is that platform's: its config says so, and its own step ran on it.
    repo = first.image.split("/", 1)[1].rsplit(":", 1)[0]
    for p, (arch, machine) in ARCH.items():
        manifest = json.loads(_get(services, f"{services.registry}/{repo}@{listed[p]}")[0])  # type: ignore[index]
        assert json.loads(_blob(services, repo, manifest["config"]["digest"]))["architecture"] == arch
        assert _run(services, first.image, f"linux/{arch}", ["cat", "/etc/built-on"]).strip() == machine

    plan = api.plan(spec, options=BuildOptions(addr=f"docker://{services.docker_host}"))
    assert plan.action == "found"
    doc = plan_document([plan])
    jsonschema.validate(doc, SCHEMA)
    (env,) = doc["environments"]
    assert env["index"]["exists"] is True and env["found_digest"] == first.digest
    assert [(e["inputs"]["platform"], e["action"]) for e in env["platforms"]] == [
        ("linux-64", "found"),
        ("linux-aarch64", "found"),
    ]

    # `run` picks the engine's own platform (amd64 here) and runs that platform's image.
    addr = f"docker://{services.docker_host}"
    assert engine_platform(addr) == "linux-64"
    ran, code = api.run(
        spec, RunOptions(("cat", "/etc/built-on"), source=tmp_path, network="none"),
        options=BuildOptions(addr=addr, network="none"), progress=Progress("quiet"),
    )  # fmt: skip
    assert code == 0 and ran.action == "found" and ran.image == first.platforms["linux-64"].image
    assert capfd.readouterr().out.strip() == "x86_64"

    again = _build(spec, services)
    assert again.action == "found" and again.digest == first.digest
    assert all(r.action == "found" and not r.solved for r in again.platforms.values())

    # One platform's manifest goes: only it is built again, and the index is put over it.
    _delete(services, first.platforms["linux-aarch64"].image)
    repaired = _build(spec, services)
    assert repaired.action == "built"
    assert {p: r.action for p, r in repaired.platforms.items()} == {
        "linux-64": "found",
        "linux-aarch64": "built",
    }
    assert not repaired.platforms["linux-64"].solved and repaired.platforms["linux-aarch64"].solved
    now = _index(services, repaired)
    assert now["linux-64"] == listed["linux-64"]
    assert _build(spec, services).action == "found"
