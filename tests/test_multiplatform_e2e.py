"""Issue 17 end to end: a managed spec with `platforms: [linux-64, linux-aarch64]` on the
multi-arch Debian 12 base (tests/fixtures_multiarch.py), locked for both platforms by real
conda-lock, with the local channel's arch-specific package (archkit: a static binary printing
uname's machine, and share/archkit/arch.txt), its noarch dependency, and a RUN step of the
user's own in the runtime stage. (No pip section: linux-64's pip runs in the environment's
Python, and the test channel's is a wrapper around the base's, which has no pip; the cross pip
step is tested in test_crossinstall.py.)
Built through layerkit on a real engine and registry into one image index: each platform's
image for its platform, its env stage cross-installed on the build platform (the arm64 env
stage image is amd64 and holds aarch64 files) and only the base and runtime steps run under
QEMU; each platform's image run shows its machine everywhere; skip-by-hash on the next run,
and a repair that rebuilds only the platform whose manifest went missing.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import fixtures_multiarch as fm
import jsonschema
import pytest
from fixtures_services import Services, container_output
from test_signing import cosign_keys

from layerkit import api
from layerkit.build.builder import BuildOptions, BuildResult
from layerkit.build.hostplatform import engine_platform
from layerkit.build.indexplan import plan_document
from layerkit.build.progress import Progress
from layerkit.build.registry import MANIFEST_TYPES, ImageRef, RegistryClient
from layerkit.build.runner import RunOptions
from layerkit.build.signing import verify
from layerkit.build.verify import NOT_REPRODUCIBLE

pytestmark = pytest.mark.integration
SCHEMA = json.loads(
    (Path(__file__).parent.parent / "layerkit" / "schemas" / "plan-1.schema.json").read_text()
)

INDEX = "application/vnd.oci.image.index.v1+json"
ARCH = {"linux-64": ("amd64", "x86_64"), "linux-aarch64": ("arm64", "aarch64")}
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}  # e_machine: EM_X86_64, EM_AARCH64
# What each platform's image shows, one line each: the kernel's machine as seen inside, the
# locked package's binary and data file, the user's step's record.
PROBE = "uname -m; archkit; cat /opt/env/share/archkit/arch.txt; cat /etc/built-on"


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


def _layer_files(
    services: Services, repo: str, manifest: dict[str, object], names: set[str]
) -> dict[str, bytes]:
    """The regular files `names` in an image's layers (a later layer's copy wins), from the registry."""
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:  # type: ignore[attr-defined]
        data = _blob(services, repo, layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            for m in tf:
                f = tf.extractfile(m) if m.isfile() and m.name.lstrip("./") in names else None
                if f is not None:
                    files[m.name.lstrip("./")] = f.read()
    return files


def _elf_machine(binary: bytes) -> int:
    assert binary[:4] == b"\x7fELF"
    return int.from_bytes(binary[18:20], "little")


def _repo(ref: str) -> str:
    name = ref.split("/", 1)[1]
    return name.partition("@")[0] if "@" in name else name.rsplit(":", 1)[0]


def _manifest_and_config(services: Services, ref: str) -> tuple[dict[str, object], dict[str, object]]:
    got = _get(services, ref)
    assert got is not None, ref
    manifest = json.loads(got[0])
    return manifest, json.loads(_blob(services, _repo(ref), manifest["config"]["digest"]))


def _by_digest(ref: str) -> ImageRef:
    image = ImageRef.parse(ref)
    info = RegistryClient().head_manifest(image)
    assert info is not None, ref
    return ImageRef(image.registry, image.repository, None, info.digest)


def _verify_cli(spec: Path, services: Services) -> tuple[int, dict[str, object] | None, str]:
    """`layerkit verify --json SPEC`: exit code, the report (None when it printed none), stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "layerkit", "verify", "--json", "--progress", "quiet",
         "--addr", f"docker://{services.docker_host}", "--network", "host", str(spec)],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else None, proc.stderr


def _build(spec: Path, services: Services) -> BuildResult:
    # Host network: the env stage installs from the site's channel and mirror on 127.0.0.1.
    return fb.build_spec(spec, services)[0]


@pytest.fixture(scope="module", params=["26", "20"])
def engine(
    request: pytest.FixtureRequest, multiarch_site: fb.Site, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Services, Path, str]]:
    """Docker 26 (containerd store: the image exporter pushes) and Debian 12's dockerd 20.10
    (BuildKit 0.8, moby exporter, Engine API push), each with its registry, the multi-arch
    base in it, and the two-platform spec on them, locked."""
    if request.param == "26":
        services: Services = request.getfixturevalue("services")
        base: fm.MultiarchBase = request.getfixturevalue("multiarch_base")
    else:
        services = request.getfixturevalue("services20")
        base = fm.multiarch_base(services)
    spec = fm.multiarch_spec(
        tmp_path_factory.mktemp(f"mp{request.param}"), multiarch_site, base, services,
        repo=f"t/{uuid.uuid4().hex[:8]}",
        # The user's own step, run by each platform's solve (arm64: under QEMU).
        steps=(("sh", "-c", "uname -m > /etc/built-on"),),
    )  # fmt: skip
    yield services, spec, request.param


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
    engine: tuple[Services, Path, str], capfd: pytest.CaptureFixture[str], tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    services, spec, version = engine
    stack = contextlib.ExitStack()
    request.addfinalizer(stack.close)
    keys, _ = stack.enter_context(cosign_keys(tmp_path))
    # Signed (--sign, on Docker 26: signing is the registry's business, not the engine's):
    # each platform's image and stage images, then the index this run put, so `cosign verify`
    # of the name tag, which users pull and which names the index, passes.
    first = fb.build_spec(spec, services, sign_key=keys.key if version == "26" else None)[0]
    name_tag = _by_digest(first.image.rsplit(":", 1)[0] + ":demo-multi-1")
    assert name_tag.digest == first.digest
    if version == "26":
        assert verify(name_tag, keys.pub, None).ok and not verify(name_tag, keys.other_pub, None).ok
        # The env record names the index and each platform's digest.
        record = api.env_register(spec).record
        assert record.digests == {p: r.digest for p, r in first.platforms.items()}
        assert record.index == first.image and record.index_digest == first.digest
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
    tagged = _get(services, first.image.rsplit(":", 1)[0] + ":demo-multi-1")
    assert tagged is not None and tagged[2] == first.digest
    repo = first.image.split("/", 1)[1].rsplit(":", 1)[0]
    client = docker.DockerClient(base_url=services.docker_host)
    try:
        for p, (arch, machine) in ARCH.items():
            # Each platform's image is that platform's: its config says so ...
            _, config = _manifest_and_config(services, f"{services.registry}/{repo}@{listed[p]}")
            assert config["architecture"] == arch
            # ... and its env stage was installed on the build platform, not emulated: the stage
            # image is amd64's, its userland too (the installer's Python), whatever the target,
            # and /opt/env holds the target's files.
            env_ref = first.platforms[p].stages["env"]
            env_manifest, env_config = _manifest_and_config(services, env_ref)
            assert env_config["architecture"] == "amd64", (p, env_config["architecture"])
            wanted = {"usr/bin/python3.11", "opt/env/bin/archkit", "opt/env/share/archkit/arch.txt"}
            files = _layer_files(services, _repo(env_ref), env_manifest, wanted)
            assert _elf_machine(files["usr/bin/python3.11"]) == ELF_MACHINE["x86_64"], p
            assert _elf_machine(files["opt/env/bin/archkit"]) == ELF_MACHINE[machine], p
            assert files["opt/env/share/archkit/arch.txt"] == f"{machine}\n".encode()
            # Run through the index by platform: the machine, the package's binary and data,
            # the user's step and the wheel all say this platform's.
            client.images.pull(first.image, platform=f"linux/{arch}")
            out = container_output(client, first.image, ["sh", "-c", PROBE], platform=f"linux/{arch}")
            assert out.decode().split() == [machine] * 4, (p, out)
    finally:
        client.close()

    # `layerkit verify`: rebuilt with no cache, both platforms and the index come out the same
    # (arm64's env stage cross-installed again, its user step under QEMU again). Docker 20.10
    # has no image exporter: refused in one line, exit 3.
    code, report, stderr = _verify_cli(spec, services)
    if version == "26":
        assert code == 0, stderr
        assert report["same"] is True and report["findings"] == []
        assert report["recorded_digest"] == first.digest == report["rebuilt_digest"]
        checked = {p["platform"]: p for p in report["platforms"]}  # type: ignore[attr-defined]
        assert set(checked) == set(ARCH)
        for p, r in first.platforms.items():
            assert checked[p]["recorded_digest"] == r.digest == checked[p]["rebuilt_digest"]
    else:
        assert (code, report) == (3, None), stderr
        # Last, one line (the base's unknown arm64 variant is warned above it).
        assert stderr.strip().splitlines()[-1] == f"layerkit: error: {NOT_REPRODUCIBLE}", stderr
        assert "Traceback" not in stderr

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
        spec, RunOptions(("cat", "/etc/built-on"), source=spec.parent, network="none"),
        options=BuildOptions(addr=addr, network="none"), progress=Progress("quiet"),
    )  # fmt: skip
    assert code == 0 and ran.action == "found" and ran.image == first.platforms["linux-64"].image
    assert capfd.readouterr().out.strip() == "x86_64"

    again = _build(spec, services)
    assert again.action == "found" and again.digest == first.digest
    assert all(r.action == "found" and not r.solved for r in again.platforms.values())
    if version == "20":
        return  # the repair's decisions and index put are the engine's no more than the above

    # One platform's manifest goes: only it is built again, and the index is put over it.
    _delete(services, first.platforms["linux-aarch64"].image)
    # The repair signs what it pushes: the arm64 image, and the index it puts again, since the
    # amd64 image it lists was verified (--require-signature) before it was reused.
    repaired = fb.build_spec(spec, services, sign_key=keys.key, require_signature=keys.pub)[0]
    name_tag = _by_digest(first.image.rsplit(":", 1)[0] + ":demo-multi-1")
    assert name_tag.digest == repaired.digest
    assert verify(name_tag, keys.pub, None).ok
    assert verify(_by_digest(repaired.platforms["linux-aarch64"].image), keys.pub, None).ok
    # Without the gate, an index over an image this run neither built nor verified is not
    # signed, and the build says so.
    _delete(services, first.platforms["linux-aarch64"].image)
    unvouched = fb.build_spec(spec, services, sign_key=keys.key)[0]
    assert any("is not signed" in w and "linux-64" in w for w in unvouched.warnings), unvouched.warnings
    assert repaired.action == "built"
    assert {p: r.action for p, r in repaired.platforms.items()} == {
        "linux-64": "found",
        "linux-aarch64": "built",
    }
    assert not repaired.platforms["linux-64"].solved and repaired.platforms["linux-aarch64"].solved
    now = _index(services, repaired)
    assert now["linux-64"] == listed["linux-64"]
    assert _build(spec, services).action == "found"
